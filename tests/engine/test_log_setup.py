"""A run's log file also receives what data, evaluation and model code log."""

import logging

from core.engine.log_setup import close_logger, setup_logger


def test_component_warnings_reach_the_run_log(tmp_path):
    log_file = tmp_path / "train.log"
    logger, _ = setup_logger("log-test", log_file, rank=0)
    run_handlers = list(logger.handlers)
    logger.info("run line")
    logging.getLogger("plugdet.data").warning("bad.jpg: corrupt image; skipped")
    logging.getLogger("plugdet.evaluation").info("per-class AP table")
    close_logger(logger)
    logging.getLogger("plugdet.data").warning("after the run")
    text = log_file.read_text()
    assert "run line" in text
    assert "WARNING - bad.jpg: corrupt image; skipped" in text
    assert "per-class AP table" in text
    assert "after the run" not in text
    assert not set(run_handlers) & set(logging.getLogger("plugdet").handlers)
