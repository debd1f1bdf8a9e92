"""Reading official checkpoints: one canonicalizer, then one key map per architecture (STYLE.md).

An official `.pth` arrives wrapped (BasicSR's `params_ema`, Lightning's `state_dict`, ...) and prefixed
(DataParallel's `module.`, BasicSR's `netG.`, torch.compile's `_orig_mod.`); `canonicalize` removes both.
Each architecture describes its official layouts beside its class as a `KeyMap`: full-match patterns on the
canonical keys, each giving srtk's key. `KeyMap.rename` applies it; `RenamedState.finish` is the used-keys
check: every official key known, every tensor of the srtk network filled with its shape, or one
CheckpointError that lists the difference and names the layout. Converters infer the hyper-parameters
between the two steps, from srtk's names, so that every layout of an architecture shares one inference.
"""

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from srtk.errors import CheckpointError, SrtkError

# Training wrappers, first present wins: BasicSR evaluates and releases its EMA weights, so they come first.
WRAPPERS = ("params_ema", "params", "state_dict", "model_state_dict", "model")
# Wrapper prefixes: DataParallel, BasicSR's model attribute, Lightning-style modules, torch.compile.
PREFIXES = ("module.", "netG.", "model.", "_orig_mod.")
SHOWN_KEYS = 5  # keys listed in an error message; the rest are counted

# srtk's key for a matched official key: an `re.Match.expand` template (r"head.\1"), a function of the match
# (index arithmetic), or None for a tensor the layout knows and srtk drops (fixed kernels, mean shifts, ...).
KeyTarget = str | Callable[[re.Match[str]], str] | None
KeyRule = tuple[str, KeyTarget]
ValueTransform = Callable[[Tensor], Tensor]


def _under_wrapper(prefix: str, key: str) -> bool:
    """`key` sits under `prefix` as under a wrapper; `model.0.weight` is ESRGAN's nn.Sequential, not a wrapper."""
    rest = key.removeprefix(prefix)
    return key.startswith(prefix) and bool(rest) and not rest.split(".", 1)[0].isdigit()


def canonicalize(raw: Mapping[str, Any]) -> dict[str, Tensor]:
    """The bare state dict of a saved checkpoint: wrapper unwrapped, shared wrapper prefixes and non-tensors gone."""
    for wrapper in WRAPPERS:
        if isinstance(raw.get(wrapper), Mapping):
            raw = raw[wrapper]
            break
    state = {key: value for key, value in raw.items() if isinstance(key, str) and isinstance(value, Tensor)}
    stripped = True
    while stripped:  # to a fixed point, so that canonicalize(canonicalize(x)) == canonicalize(x)
        stripped = False
        for prefix in PREFIXES:
            if state and all(_under_wrapper(prefix, key) for key in state):  # only a prefix every key shares
                state = {key.removeprefix(prefix): value for key, value in state.items()}
                stripped = True
    return state


def num_indexed(keys: Iterable[str], pattern: str) -> int:
    """1 + the largest integer group 1 of `pattern` takes over `keys` (0 if none matches).

    1 + max rather than a count: a gap in the numbering then shows as a missing tensor instead of shifting
    every later block onto the wrong weights.
    """
    found = [int(match[1]) for key in keys if (match := re.fullmatch(pattern, key))]
    return 1 + max(found) if found else 0


def listed(items: Sequence[str]) -> str:
    """The first few items, comma-separated, and how many more there are."""
    more = f" ... (+{len(items) - SHOWN_KEYS} more)" if len(items) > SHOWN_KEYS else ""
    return ", ".join(items[:SHOWN_KEYS]) + more


def state_shapes(build: Callable[..., nn.Module], config: Mapping[str, Any]) -> dict[str, torch.Size]:
    """Key -> shape of the state dict of `build(**config)`, built on the meta device: no memory, no init."""
    try:
        with torch.device("meta"):
            network = build(**config)
    except (SrtkError, TypeError, ValueError) as error:
        raise CheckpointError(f"inferred configuration {config} does not build ({error})") from None
    return {key: value.shape for key, value in network.state_dict().items()}


@dataclass(frozen=True)
class KeyMap:
    """How one official layout names the tensors of one srtk architecture: rules in order, first match wins."""

    layout: str  # the layout's name in error messages, e.g. "ESRGAN (BasicSR)"
    rules: Sequence[KeyRule]

    def lookup(self, key: str) -> tuple[bool, str | None]:
        """(whether a rule knows `key`, srtk's key for it or None when the layout drops it)."""
        for pattern, target in self.rules:
            match = re.fullmatch(pattern, key)
            if match:
                if target is None:
                    return True, None
                return True, target(match) if callable(target) else match.expand(target)
        return False, None

    def known_share(self, keys: Iterable[str]) -> float:
        """The fraction of `keys` some rule knows: how near a checkpoint is to this layout."""
        keys = list(keys)
        return sum(self.lookup(key)[0] for key in keys) / len(keys) if keys else 0.0

    def rename(self, state: Mapping[str, Tensor]) -> "RenamedState":
        """The tensors under srtk's names; two official keys landing on one name must hold equal tensors."""
        renamed = RenamedState(layout=self.layout, tensors={}, sources={}, unknown=[])
        for key, value in state.items():
            known, target = self.lookup(key)
            if not known:
                renamed.unknown.append(key)
            elif target is not None:
                if target in renamed.tensors and not torch.equal(renamed.tensors[target], value):
                    first = renamed.sources[target]
                    raise CheckpointError(f"{self.layout} checkpoint: {key} and {first} disagree on {target}")
                renamed.tensors[target], renamed.sources[target] = value, key
        return renamed


@dataclass
class RenamedState:
    """An official state dict under srtk's names, before the used-keys check."""

    layout: str
    tensors: dict[str, Tensor]  # srtk key -> tensor
    sources: dict[str, str]  # srtk key -> the official key it came from
    unknown: list[str]  # official keys no rule of the layout knows

    def require(self, key: str) -> Tensor:
        """The tensor for srtk's `key`; its absence is the layout's mismatch error."""
        if key not in self.tensors:
            raise self.mismatch(unexpected=self.unknown, missing=[key])
        return self.tensors[key]

    def default(self, key: str, value: Tensor) -> None:
        """Fill srtk's `key` with `value` where the checkpoint has none (a tensor older formats did not save)."""
        if key not in self.tensors:
            self.tensors[key], self.sources[key] = value, f"(default for {key})"

    def finish(
        self, expected: Mapping[str, torch.Size], transforms: Mapping[str, ValueTransform] | None = None
    ) -> dict[str, Tensor]:
        """srtk's state dict: every official key used, every `expected` tensor filled with its shape.

        `transforms` then change values by srtk key (EDSR-PyTorch's pixel range absorbed into a conv).
        """
        # A known key that lands on a tensor this network lacks is as unexpected as an unknown one.
        unexpected = self.unknown + [self.sources[key] for key in self.tensors if key not in expected]
        missing = [key for key in expected if key not in self.tensors]
        wrong_shapes = [
            f"{self.sources[key]} {tuple(value.shape)} for {key} {tuple(expected[key])}"
            for key, value in self.tensors.items()
            if key in expected and value.shape != expected[key]
        ]
        if unexpected or missing or wrong_shapes:
            raise self.mismatch(unexpected=unexpected, missing=missing, wrong_shapes=wrong_shapes)
        out = dict(self.tensors)
        for key, transform in (transforms or {}).items():
            out[key] = transform(out[key])
        return out

    def mismatch(
        self, *, unexpected: Sequence[str] = (), missing: Sequence[str] = (), wrong_shapes: Sequence[str] = ()
    ) -> CheckpointError:
        """The error for a checkpoint near this layout that it does not fit, listing the difference."""
        parts = []
        if unexpected:
            parts.append(f"unexpected keys unknown to it ({len(unexpected)}): {listed(unexpected)}")
        if missing:
            parts.append(f"lacks {len(missing)} tensor(s) of srtk's network: {listed(missing)}")
        if wrong_shapes:
            parts.append(f"wrong shapes ({len(wrong_shapes)}): {listed(wrong_shapes)}")
        return CheckpointError(f"does not fit the {self.layout} layout, the nearest srtk reads: {'; '.join(parts)}")
