"""TensorBoard event files in ``<run>/tb/`` (``tensorboard --logdir results/``)."""

from __future__ import annotations

from typing import Any

from ssl_bench.tracking.base import RunInfo, register_tracker

#: The folder of a run's event files, inside its run directory.
TB_FOLDER = "tb"


@register_tracker("tensorboard")
class TensorBoardTracker:
    """Event files in <run>/tb/: scalars at their step, the configuration as hyper-parameters.

    A resumed run purges the events it logs again (``purge_step``), so a run killed
    after its checkpoint shows each step once.
    """

    name = "tensorboard"
    requires = "tensorboard"
    install = "pip install 'ssl-bench[tensorboard]'"

    def __init__(self, info: RunInfo) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(info.run_dir / TB_FOLDER),
                                    purge_step=info.start_step + 1 if info.resumed else None)

    def log_step(self, step: int, values: dict[str, float]) -> None:
        self._scalars(step, values)

    def log_evaluation(self, step: int, values: dict[str, float]) -> None:
        self._scalars(step, values)
        self.writer.flush()  # an evaluation is what a person watching waits for

    def finish(self, step: int, hparams: dict[str, Any], final: dict[str, float]) -> None:
        from torch.utils.tensorboard.summary import hparams as hparam_summaries

        plain = {k: v if isinstance(v, bool | int | float | str) else str(v)
                 for k, v in hparams.items()}
        for summary in hparam_summaries(plain, final):
            self.writer.file_writer.add_summary(summary, step)
        self._scalars(step, final)

    def close(self, status: str) -> None:
        self.writer.close()

    def _scalars(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
