"""model_graph: a RetinaNet graph is written to TensorBoard and read back."""

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from core.tools.model_graph import main

CONFIG = """
[model]
type = "RetinaNet"
backbone = {type = "ResNet", depth = 18, base_channels = 8, out_indices = [1, 2, 3]}

[model.neck]
type = "FPN"
in_channels = [16, 32, 64]
out_channels = 16
start_level = 0
add_extra_convs = "on_output"
num_outs = 5

[model.head]
type = "RetinaHead"
num_classes = 3
in_channels = 16
feat_channels = 16
stacked_convs = 1
"""


def test_retinanet_graph_is_written_to_tensorboard(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG)
    work_dir = tmp_path / "graph"
    assert main([str(config), "--work-dir", str(work_dir), "--shape", "64", "96"]) == 0
    assert "tensorboard --logdir" in capsys.readouterr().out
    events = EventAccumulator(str(work_dir / "vis_data" / "tensorboard"))
    events.Reload()
    graph = events.Graph()
    names = [node.name for node in graph.node]
    convs = [node for node in graph.node if node.op in ("aten::_convolution", "aten::conv2d")]
    # ResNet-18 (20 convs) + FPN (3 lateral, 3 output, 2 extra) + head (2 subnets + 2 predictors)
    assert len(convs) >= 32
    assert any("backbone" in n for n in names) and any("neck" in n for n in names)
    assert any("retina_cls" in n for n in names) and any("retina_reg" in n for n in names)


def test_a_bad_config_is_a_clear_error(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text(CONFIG.replace('type = "RetinaHead"', 'type = "RetinaHed"'))
    assert main([str(config), "--work-dir", str(tmp_path / "g")]) == 2
    assert "model.head.type" in capsys.readouterr().err
