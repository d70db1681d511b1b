"""The training engine: Runner, runner hooks, optimizers, schedulers, checkpoints, MessageHub.

Entry points: :class:`core.engine.runner.Runner` and
:meth:`core.engine.message_hub.MessageHub.get_current_instance`.
"""
