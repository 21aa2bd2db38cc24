"""One argument vocabulary for the whole public API, validated in one place.

Every public function takes its arguments from this list, with these meanings, and checks them
here before any slow work:

=============  ====================================================================================
``model``      a TransformerLens model (TransformerBridge, HookedTransformer, HookedEncoder)
``inputs``     a string, a list of strings, or token ids ``[pos]`` / ``[batch, pos]``
``layers``     an int or a sequence of ints (the model's own layer numbers); None = all
``points``     ``"resid"`` (block inputs/outputs) or ``"sublayer"`` (adds mid-block points)
``space``      ``"raw"`` or ``"normalized"`` (what the next LayerNorm/RMSNorm reads, on √d)
``seed``       an int in [0, 2**63) or None; randomness only through it / a ``torch.Generator``
``device``     a torch device string or object; None = the model's / tensors' device
``progress``   bool: show a tqdm bar on stderr
``alpha``      a float in (0, 1): the level of every test
``correction`` ``"holm"`` (default) or ``"bh"`` (Benjamini–Hochberg) across a family of tests
=============  ====================================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

from tlgeom._errors import bad_arg

if TYPE_CHECKING:  # torch is imported where it is used: the command line's --help reads this module without it
    import torch

SPACES = ("raw", "normalized")
POINTS = ("resid", "sublayer")
CORRECTIONS = ("holm", "bh", "none")
SEED_MAX = 2**63
#: Matched control edits per edit (eclipse): 19 is the fewest for which a rank p-value can reach 0.05; 39 finds a
#: planted deflection of 2 / 4 depth units in 70 % / 99.7 % of single edits at the same false-onset rate, against
#: 60 % / 95 % with 19 (``tests/calibration/test_onset_calibration.py``, ``results/onset_calibration.csv``).
CONTROLS = 39


def check_choice(arg: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``, else a TlgeomError naming them."""
    if not isinstance(value, str) or value not in choices:
        raise bad_arg(arg, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def check_space(space: str) -> str:
    return check_choice("space", space, SPACES)


def check_points(points: str) -> str:
    return check_choice("points", points, POINTS)


def check_correction(correction: str) -> str:
    return check_choice("correction", correction, CORRECTIONS)


@overload
def check_seed(seed: int | None, arg: str = ..., *, allow_none: Literal[False]) -> int: ...
@overload
def check_seed(seed: int | None, arg: str, allow_none: Literal[False]) -> int: ...
@overload
def check_seed(seed: int, arg: str = ..., allow_none: bool = ...) -> int: ...
@overload
def check_seed(seed: int | None, arg: str = ..., allow_none: bool = ...) -> int | None: ...
def check_seed(seed: int | None, arg: str = "seed", allow_none: bool = True) -> int | None:
    """An int in [0, 2**63) (what ``torch.Generator.manual_seed`` and numpy accept), or None."""
    if seed is None and allow_none:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_MAX:
        raise bad_arg(arg, seed, "an int in [0, 2**63)" + (" or None" if allow_none else ""))
    return seed


def generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with ``seed`` (None: from the OS entropy)."""
    import torch

    g = torch.Generator(device=torch.device(device))
    checked = check_seed(seed)
    if checked is None:
        g.seed()
    else:
        g.manual_seed(checked)
    return g


def check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < float(alpha) < 1:
        raise bad_arg("alpha", alpha, "a float in (0, 1)")
    return float(alpha)


def check_int(arg: str, value: Any, minimum: int = 0, maximum: int | None = None) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        rng = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise bad_arg(arg, value, f"an int {rng}")
    return value


def check_layers(layers: int | Sequence[int] | None, n_layers: int, arg: str = "layers") -> list[int]:
    """An int or a sequence of ints in ``[0, n_layers)`` (negative counts from the end) → a sorted list.

    None means every layer.
    """
    if layers is None:
        return list(range(n_layers))
    items = [layers] if isinstance(layers, int) and not isinstance(layers, bool) else layers
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence) or len(items) == 0:
        raise bad_arg(arg, layers, f"an int or a non-empty sequence of ints in [-{n_layers}, {n_layers})")
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, int) or not -n_layers <= v < n_layers:
            raise bad_arg(arg, layers, f"ints in [-{n_layers}, {n_layers}) (the model has {n_layers} layers)")
        out.append(v % n_layers)
    if len(set(out)) != len(out):
        raise bad_arg(arg, layers, "distinct layers")
    return sorted(out)


def check_init_seeds(init_seeds: Any, first: int = 0) -> list[int]:
    """The initialisations of an untrained reference: None → ``[first]``; a count ``k`` → ``first, first + 1,
    …``; or a non-empty list of distinct seeds."""
    if init_seeds is None:
        return [check_seed(first, "init_seed", allow_none=False)]
    if isinstance(init_seeds, int) and not isinstance(init_seeds, bool):
        return [first + i for i in range(check_int("init_seeds", init_seeds, 1))]
    if not isinstance(init_seeds, (list, tuple)) or not init_seeds:
        raise bad_arg("init_seeds", init_seeds, "a count >= 1, a non-empty list of seeds, or None")
    seeds = [check_seed(v, "init_seeds", allow_none=False) for v in init_seeds]
    if len(set(seeds)) != len(seeds):
        raise bad_arg("init_seeds", init_seeds, "distinct seeds")
    return seeds


def check_texts(inputs: Any, minimum: int = 3, hint: str = "") -> list[str]:
    """``inputs`` as a list of texts when it is a list (or tuple) of at least ``minimum`` strings: the text is
    the unit of inference."""
    if isinstance(inputs, str) or not isinstance(inputs, (list, tuple)) or not all(isinstance(t, str) for t in inputs):
        raise bad_arg("inputs", inputs, "a list of texts (strings): the text is the unit of inference")
    if len(inputs) < minimum:
        raise bad_arg("inputs", f"{len(inputs)} text(s)", f"at least {minimum} texts{hint}")
    return list(inputs)


def check_bool(arg: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise bad_arg(arg, value, "True or False")
    return value


#: Float dtypes a model may run in, by name (``load_model(dtype="bfloat16")``): the ``torch`` attribute names.
DTYPES = ("float32", "float64", "float16", "bfloat16")


def check_dtype(dtype: Any, arg: str = "dtype") -> torch.dtype:
    """A torch float dtype from a name in :data:`DTYPES` or a floating ``torch.dtype``."""
    import torch

    if isinstance(dtype, str) and dtype.lower().removeprefix("torch.") in DTYPES:
        return getattr(torch, dtype.lower().removeprefix("torch."))
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point and not dtype.is_complex:
        return dtype
    raise bad_arg(arg, dtype, "one of " + ", ".join(repr(k) for k in DTYPES) + " or a floating torch.dtype")


def renamed(**old_to_new: str):
    """Decorator: keep old keyword names working for one release, with a DeprecationWarning.

    ``@renamed(text="inputs")`` makes ``f(model, text="…")`` call ``f(model, inputs="…")`` and warn
    ``text= is deprecated, use inputs=``; passing both names is a TlgeomError.
    """
    import functools
    import warnings

    from tlgeom._errors import TlgeomError

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TlgeomError(f"{fn.__name__}: pass {new}= only ({old}= is its deprecated name)")
                    warnings.warn(
                        f"{fn.__name__}({old}=...) is deprecated, use {new}= (the old name goes in the next release)",
                        DeprecationWarning,
                        stacklevel=2,
                    )
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        inner.__tlgeom_renamed__ = dict(old_to_new)
        return inner

    return wrap
