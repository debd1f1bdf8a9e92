"""Self-supervised training of the neural structure extractor (`srtk pretrain-nse`, paper 000 sec. 4.2), as a
method of the one training engine: the "generator" it trains is the NSE with its pretext head (PretextModel), it
has no critics, and its step loss is the contrastive-prediction InfoNCE (eq. 11-12) or the jigsaw cross-entropy
(eq. 13) on the HR patches of the batch (the LR half of the batch is not used).

With `pretext.freeze_extractor` only the head learns: the re-fitting of Appendix B.2, where P (or J) is optimised
on the training set while the extractor under evaluation stays fixed.
Convention: images RGB, NCHW, float in [0, 1].
"""

from typing import Any

from torch import Tensor, nn

from srtk.config.train import ModelConfig, TrainConfig
from srtk.errors import ConfigError
from srtk.losses.pretext import pretext_loss
from srtk.models.registry import build_model
from srtk.models.structure_extractors import build_structure_extractor
from srtk.train.methods import GeneratorStep, InitReport

PRETEXT_ARCHITECTURE = "nse-pretext"


def pretext_spec(cfg: TrainConfig) -> dict[str, Any]:
    """Builder kwargs of the PretextModel a pretext configuration trains: what its model card records."""
    pretext = cfg.pretext
    return {
        "task": pretext.task,
        "sampling": pretext.sampling,
        **dict(pretext.extractor_options),
        **dict(pretext.head_options),
    }


class PretextMethod(nn.Module):
    """The NSE and its pretext head, trained on HR patches by the task the configuration names."""

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        pretext = cfg.pretext
        if pretext.task is None:
            raise ConfigError("pretext.task: choose contrastive or jigsaw")
        if cfg.data.val_dataset:
            raise ConfigError(
                "data.val_dataset: pretext runs are validated by `srtk pretrain-nse --evaluate`, not during training"
            )
        self.cfg = cfg
        self.architecture, self.architecture_config = PRETEXT_ARCHITECTURE, pretext_spec(cfg)
        self.generator = build_model(self.architecture, **self.architecture_config)
        self.discriminators = nn.ModuleDict()  # no critics: the engine's critic step is skipped
        self.warmup_modules: tuple[str, ...] = ()
        if pretext.freeze_extractor:
            self.generator.extractor.requires_grad_(False)

    def initialize(self, model: ModelConfig, method: str) -> InitReport | None:
        """Start the extractor from pretext.nse (a pretrained NSE; the head always starts fresh)."""
        if model.init is not None:
            raise ConfigError("model.init: a pretext run starts its extractor from pretext.nse (--nse), not --init")
        if self.cfg.pretext.nse is None:
            if self.cfg.pretext.freeze_extractor:
                raise ConfigError("pretext.freeze_extractor needs the extractor to fit a head to: give pretext.nse")
            return None
        path = self.cfg.pretext.nse
        extractor = build_structure_extractor("nse", nse=path)
        own, theirs = self.generator.extractor.state_dict(), extractor.state_dict()
        if {k: v.shape for k, v in own.items()} != {k: v.shape for k, v in theirs.items()}:
            raise ConfigError(
                f"{path}: its extractor has other sizes than pretext.extractor_options "
                f"{dict(self.cfg.pretext.extractor_options)}; give the options it was trained with"
            )
        self.generator.extractor.load_state_dict(theirs)
        return InitReport(copied=[f"extractor.{key}" for key in extractor.state_dict()])

    def warm_up(self, iteration: int) -> bool:  # no fusion layers, no critics: the extractor always steps
        return True

    def generator_losses(self, lr: Tensor, hr: Tensor) -> GeneratorStep:
        pretext = self.cfg.pretext
        result = pretext_loss(
            self.generator, hr, temperature=pretext.temperature, targets_per_image=pretext.targets_per_image
        )
        terms = {pretext.task or "pretext": result.loss, "top1": result.accuracy, "total": result.loss}
        return GeneratorStep(terms, hr, hr)

    def discriminator_losses(self, step: GeneratorStep) -> dict[str, Tensor]:
        raise AssertionError("a pretext run has no critics")

    def active_terms(self) -> dict[str, float]:
        return {f"pretext_{self.cfg.pretext.task}": 1.0}
