"""The public plugin API: every name a plugin distribution or a ``contrib/`` tool may import.

A plugin imports from here only (``from core.api import DenseHead, component, impl``); every
other module of ``core`` is internal and may change within a plugin API version.
:data:`PLUGIN_API_VERSION` versions exactly this surface, and ``CHANGELOG.md`` says what a
plugin author must do when it changes. The names, by layer:

- kernel: hook marker and registration types, ``component``, the contracts (stage Protocols
  and the data passed between stages), the data structures (``DetSample`` maps boxes back to
  the original image), errors, configs;
- built-in library: the dense-head base and its helpers, the loss and post-process bases, the
  detector bases, priors, coders' shared checks, enhance layers, mixed precision helpers;
- engine: runner hooks, the runner, checkpoints, data loading, seeding;
- pretrained weights: the checkpoint of another framework as read, its conversion to
  plugdet's keys (the ``weight_converter`` stage's data, key tables and a converter base) and
  the fitting to a model;
- visualization: the vis-backend base, the visualizer and the positives of an image (the
  model the positive-sample drawings share).

The Protocol of a dense head is ``contracts.DenseHead``; the name ``DenseHead`` here is the
base class that implements it.
"""

from core import contracts
from core.config import dump_config, load_config
from core.contracts import (
    IGNORE,
    NEGATIVE,
    PLUGIN_API_VERSION,
    Assigner,
    AssignResult,
    Backbone,
    BoxCoder,
    ClassRows,
    ConvertedState,
    Dataset,
    Detector,
    EnhanceLayer,
    GTBatch,
    Head,
    Loss,
    Metric,
    Neck,
    PeerCheckpoint,
    PostProcess,
    Predictions,
    PriorGenerator,
    Priors,
    ProposalHead,
    RoIHead,
    RunnerHook,
    Sampler,
    SampleResult,
    Transform,
    VisBackend,
    WeightConverter,
    missing_members,
)
from core.data.loader import build_dataloader
from core.data.transforms.boxes import map_instances, translate_boxes
from core.data.transforms.geometric import resize_sample
from core.engine.checkpoint import (
    load_checkpoint,
    load_model_state,
    model_state_from,
    save_checkpoint,
)
from core.engine.full_config import load_full_config
from core.engine.hooks import Hook, PipelineSwitchHook
from core.engine.losses import sum_losses
from core.engine.randomness import set_random_seed
from core.engine.runner import Runner
from core.errors import (
    CheckpointError,
    ConfigError,
    ContractError,
    DataError,
    PlugdetError,
    PluginError,
)
from core.hookspecs import DeclareStage, Register
from core.hookspecs import hookimpl as impl
from core.masks import PolygonMasks
from core.models.activations import InferenceInPlaceSiLU
from core.models.build import (
    AssignerPart,
    Buildable,
    CoderPart,
    DenseHeadParts,
    LossPart,
    PostProcessPart,
    PriorGeneratorPart,
    SamplerPart,
    build_part,
)
from core.models.coders.common import clip_to_image, require_strides
from core.models.detectors import SingleStageDetector, TwoStageDetector
from core.models.enhance import SPP, SPPF
from core.models.heads import DenseHead
from core.models.heads.dense_head import (
    NUM_POS_KEY,
    Assignments,
    DenseLossInputs,
    DenseTargets,
    assignments_by_level,
    flatten_level,
    flatten_levels,
)
from core.models.losses.reduction import Reduction, WeightedLoss, weight_reduce_loss, zero_loss
from core.models.losses.targets import cls_target_form, one_hot_without_background
from core.models.postprocess import Candidates, MultiClassNMS
from core.models.precision import float32_region, levels_in_float32
from core.models.priors import AnchorGenerator, PointGenerator
from core.plugins import PluginManager, get_registries
from core.registry import component, register_each
from core.structures import PAD_OFFSET_KEY, DetBatch, DetSample, Instances
from core.tools.cli import add_override_arguments
from core.tools.onnx_detector import export_dim, nms_top_k, top_candidates
from core.visualization import Visualizer
from core.visualization.backends.base import BaseVisBackend
from core.visualization.hooks.samples import load_original_image
from core.visualization.positives import (
    ImagePositives,
    LevelPositives,
    collect_positives,
    dense_head_of,
)
from core.weights.checkpoint import read_checkpoint, require_keys
from core.weights.fitting import FitReport, fit_to_model
from core.weights.key_maps import indexed_prefixes, inverted_table, map_key, rename_keys
from core.weights.table_converter import TableConverter
from core.weights.torchvision_zoo import (
    COCO_CLASSES,
    TORCHVISION_COCO_CATEGORIES,
    TORCHVISION_COCO_CLASSES,
)

__all__ = [
    "COCO_CLASSES",
    "IGNORE",
    "NEGATIVE",
    "NUM_POS_KEY",
    "PAD_OFFSET_KEY",
    "PLUGIN_API_VERSION",
    "SPP",
    "SPPF",
    "TORCHVISION_COCO_CATEGORIES",
    "TORCHVISION_COCO_CLASSES",
    "AnchorGenerator",
    "AssignResult",
    "Assigner",
    "AssignerPart",
    "Assignments",
    "Backbone",
    "BaseVisBackend",
    "BoxCoder",
    "Buildable",
    "Candidates",
    "CheckpointError",
    "ClassRows",
    "CoderPart",
    "ConfigError",
    "ContractError",
    "ConvertedState",
    "DataError",
    "Dataset",
    "DeclareStage",
    "DenseHead",
    "DenseHeadParts",
    "DenseLossInputs",
    "DenseTargets",
    "DetBatch",
    "DetSample",
    "Detector",
    "EnhanceLayer",
    "FitReport",
    "GTBatch",
    "Head",
    "Hook",
    "ImagePositives",
    "InferenceInPlaceSiLU",
    "Instances",
    "LevelPositives",
    "Loss",
    "LossPart",
    "Metric",
    "MultiClassNMS",
    "Neck",
    "PeerCheckpoint",
    "PipelineSwitchHook",
    "PlugdetError",
    "PluginError",
    "PluginManager",
    "PointGenerator",
    "PolygonMasks",
    "PostProcess",
    "PostProcessPart",
    "Predictions",
    "PriorGenerator",
    "PriorGeneratorPart",
    "Priors",
    "ProposalHead",
    "Reduction",
    "Register",
    "RoIHead",
    "Runner",
    "RunnerHook",
    "SampleResult",
    "Sampler",
    "SamplerPart",
    "SingleStageDetector",
    "TableConverter",
    "Transform",
    "TwoStageDetector",
    "VisBackend",
    "Visualizer",
    "WeightConverter",
    "WeightedLoss",
    "add_override_arguments",
    "assignments_by_level",
    "build_dataloader",
    "build_part",
    "clip_to_image",
    "cls_target_form",
    "collect_positives",
    "component",
    "contracts",
    "dense_head_of",
    "dump_config",
    "export_dim",
    "fit_to_model",
    "flatten_level",
    "flatten_levels",
    "float32_region",
    "get_registries",
    "impl",
    "indexed_prefixes",
    "inverted_table",
    "levels_in_float32",
    "load_checkpoint",
    "load_config",
    "load_full_config",
    "load_model_state",
    "load_original_image",
    "map_instances",
    "map_key",
    "missing_members",
    "model_state_from",
    "nms_top_k",
    "one_hot_without_background",
    "read_checkpoint",
    "register_each",
    "rename_keys",
    "require_keys",
    "require_strides",
    "resize_sample",
    "save_checkpoint",
    "set_random_seed",
    "sum_losses",
    "top_candidates",
    "translate_boxes",
    "weight_reduce_loss",
    "zero_loss",
]
