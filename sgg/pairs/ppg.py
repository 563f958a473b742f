"""PPG scorer: two autoencoders scored by reconstruction error (USAD), STAR's released weights included.

``score(x) = α·mean((AE1(x) − x)²) + β·mean((AE2(AE1(x)) − x)²)`` over the feature dimension, lower = more
likely related; α = β = ½ as in the STAR toolkit. Each autoencoder is ``encoder`` = Linear(D→50), ReLU,
Linear(50→25), ReLU and ``decoder`` = Linear(25→50), ReLU, Linear(50→D), Sigmoid — the layout (and the
state-dict keys ``encoder.0/2``, ``decoder.0/2``) of STAR's ``Autoencoder1/2``.

Files: STAR's release (``{"model_state_dict1", "model_state_dict2"}``, shipped in ``sgg/data/ppg``), sgg's
own ``sgg-ppg/1`` files (weights + vocabulary + config) and ``PPGModule`` Lightning checkpoints all load with
``weights_only=True`` through :meth:`PPG.load`.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sgg.errors import SggInputError
from sgg.structures import Vocabulary

from .features import pair_feature_dim

__all__ = ["PPG", "AutoEncoder", "STAR_WEIGHTS", "FORMAT"]

FORMAT = "sgg-ppg/1"
STAR_WEIGHTS = {"obb": "star_ppg_obb.pth", "hbb": "star_ppg_hbb.pth"}
DEFAULT_CHUNK = 1 << 17


class AutoEncoder(nn.Module):
    """D → hidden → latent → hidden → D MLP with a sigmoid output (STAR's ``Autoencoder1/2``)."""

    def __init__(self, in_dim: int = 103, hidden: int = 50, latent: int = 25):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, latent), nn.ReLU())
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, in_dim), nn.Sigmoid())

    def forward(self, x: torch.Tensor, skip_first: bool = False) -> torch.Tensor:
        """Reconstruction of ``x``, computed in ``x``'s dtype (weights cast: float64 features stay float64).
        ``skip_first``: ``x`` is already the first Linear's output (see :meth:`PPG.score_onehot`)."""
        layers = [*self.encoder, *self.decoder][1 if skip_first else 0:]
        for layer in layers:
            if isinstance(layer, nn.Linear):
                x = F.linear(x, layer.weight.to(x.dtype), layer.bias.to(x.dtype))
            else:
                x = layer(x)
        return x


class PPG(nn.Module):
    """Pair scorer over pair features (``sgg.pairs.star_pair_features``); lower score = keep.

    Args:
        num_classes: object classes of the one-hot layout (feature length ``2·C + 7``).
        vocabulary: the classes the one-hots index, in order (default: STAR's).
        hidden, latent: autoencoder widths (STAR: 50, 25). alpha, beta: weights of the two errors.
        source: provenance string kept in saved files.
    """

    def __init__(self, num_classes: int = 48, vocabulary: Vocabulary | None = None, hidden: int = 50,
                 latent: int = 25, alpha: float = 0.5, beta: float = 0.5, source: str = ""):
        super().__init__()
        self.vocabulary = vocabulary if vocabulary is not None else Vocabulary.star()
        if self.vocabulary.num_classes != num_classes:
            raise SggInputError(f"PPG: vocabulary has {self.vocabulary.num_classes} classes, "
                                f"num_classes is {num_classes}")
        self.num_classes, self.hidden, self.latent = int(num_classes), int(hidden), int(latent)
        self.alpha, self.beta, self.source = float(alpha), float(beta), str(source)
        d = pair_feature_dim(num_classes)
        self.ae1 = AutoEncoder(d, hidden, latent)
        self.ae2 = AutoEncoder(d, hidden, latent)

    @property
    def in_dim(self) -> int:
        return pair_feature_dim(self.num_classes)

    def config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "hidden": self.hidden, "latent": self.latent,
                "alpha": self.alpha, "beta": self.beta}

    # scoring ----------------------------------------------------------------------------------
    def errors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(AE1(x), AE2(AE1(x)), per-row mean squared error of each) — differentiable, for training."""
        w1 = self.ae1(x)
        w2 = self.ae2(w1)
        return w1, w2, ((w1 - x) ** 2).mean(dim=1), ((w2 - x) ** 2).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, e1, e2 = self.errors(x)
        return self.alpha * e1 + self.beta * e2

    @torch.no_grad()
    def score(self, features: torch.Tensor, chunk_size: int = DEFAULT_CHUNK) -> torch.Tensor:
        """(M,) scores of (M, D) pair features, lower = keep; in the features' dtype, ``chunk_size`` rows
        at a time so memory stays bounded."""
        x = torch.as_tensor(features)
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise SggInputError(f"PPG.score: expected (M, {self.in_dim}) features, got {tuple(x.shape)}")
        if not x.is_floating_point() or x.dtype == torch.float16:
            x = x.float()
        dev = self.ae1.encoder[0].weight.device
        out = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
        for lo in range(0, x.shape[0], chunk_size):
            out[lo:lo + chunk_size] = self(x[lo:lo + chunk_size].to(dev)).to(x.device)
        return out

    @torch.no_grad()
    def score_onehot(self, subj: torch.Tensor, obj: torch.Tensor, spatial: torch.Tensor,
                     chunk_size: int = DEFAULT_CHUNK) -> torch.Tensor:
        """:meth:`score` of the features ``[one-hot(subj), one-hot(obj), spatial]`` without building them:
        AE1's first layer on a one-hot is a column gather, and the squared error on the one-hot part is
        ``Σw² − 2·w[s] − 2·w[C+o] + 2``. Same result as ``score``; rows go through the layers ``_BLOCK`` at a
        time (the activations stay in cache, activations in place), ``chunk_size`` bounds nothing more."""
        c = self.num_classes
        x = torch.as_tensor(spatial)
        x = x.float() if not x.is_floating_point() or x.dtype == torch.float16 else x
        dev, dt = self.ae1.encoder[0].weight.device, x.dtype
        (w0, b0), *rest1 = _linears(self.ae1, dev, dt)
        rest2 = _linears(self.ae2, dev, dt)
        w0s, w0o, w0x = w0[:, :c].t().contiguous(), w0[:, c:2 * c].t().contiguous(), w0[:, 2 * c:]
        out = torch.empty(x.shape[0], dtype=dt, device=x.device)
        step = max(1, min(int(chunk_size), _BLOCK))
        for lo in range(0, x.shape[0], step):
            s, o = subj[lo:lo + step].to(dev), obj[lo:lo + step].to(dev)
            xs = x[lo:lo + step].to(dev)
            h = torch.addmm(b0, xs, w0x.t()).add_(w0s.index_select(0, s)).add_(w0o.index_select(0, o)).relu_()
            w1 = _run(h, rest1)
            w2 = _run(w1, rest2)  # its first product is a new tensor: w1 stays intact
            e = self.alpha * _onehot_error(w1, s, o, xs, c) + self.beta * _onehot_error(w2, s, o, xs, c)
            out[lo:lo + step] = e.div_(self.in_dim).to(x.device)
        return out

    # vocabulary -------------------------------------------------------------------------------
    def label_map(self, vocabulary: Vocabulary | None) -> torch.Tensor | None:
        """Index table from ``vocabulary``'s classes to this PPG's one-hot layout (None when identical).

        Refuses vocabularies whose class set differs: the one-hot layout is fixed by training."""
        if vocabulary is None or tuple(vocabulary.objects) == tuple(self.vocabulary.objects):
            return None
        if set(vocabulary.objects) != set(self.vocabulary.objects):
            missing = sorted(set(vocabulary.objects) - set(self.vocabulary.objects))[:5]
            which = "STAR's 48 classes (detector order)" if self.vocabulary == Vocabulary.star() else \
                f"its {self.num_classes} training classes"
            raise SggInputError(
                f"this PPG cannot score pairs of a {vocabulary.num_classes}-class vocabulary: its one-hot "
                f"layout is {which}, and e.g. {missing or 'the class count'} are not in it; train a PPG "
                "on your vocabulary with `sgg train ppg`", where="PPG")
        return torch.tensor([self.vocabulary.object_index(n) for n in vocabulary.objects])

    # files ------------------------------------------------------------------------------------
    @classmethod
    def from_star(cls, path: str | os.PathLike | None = None, kind: str = "obb") -> PPG:
        """STAR's released PPG (``model_state_dict1/2``); ``path`` None = the copy shipped with sgg
        (``kind`` "obb" or "hbb")."""
        if path is None:
            if kind not in STAR_WEIGHTS:
                raise SggInputError(f"kind must be one of {sorted(STAR_WEIGHTS)}, not {kind!r}", where="PPG.from_star")
            ref = resources.files("sgg.data").joinpath("ppg", STAR_WEIGHTS[kind])
            with resources.as_file(ref) as p:
                return cls.from_star(p)
        return cls._from_star_data(_load(path), path)

    @classmethod
    def _from_star_data(cls, data: Any, path: str | os.PathLike) -> PPG:
        """:meth:`from_star` of the already loaded contents of ``path``."""
        if not (isinstance(data, dict) and "model_state_dict1" in data and "model_state_dict2" in data):
            raise SggInputError("not a STAR PPG file (expected model_state_dict1 and model_state_dict2)", path=path)
        ppg = cls(48, Vocabulary.star(), source=f"STAR SGG-ToolKit PPG ({Path(path).name})")
        try:
            ppg.ae1.load_state_dict(data["model_state_dict1"])
            ppg.ae2.load_state_dict(data["model_state_dict2"])
        except RuntimeError as exc:
            raise SggInputError(f"weights do not fit 103→50→25→50→103 autoencoders ({exc})", path=path) from None
        return ppg.eval()

    def to_dict(self, half: bool = False) -> dict[str, Any]:
        """Plain dict (tensors, str, numbers) that ``torch.save`` writes and ``from_dict`` reads back."""
        sd = {k: (v.half() if half else v.float()).cpu() for k, v in self.state_dict().items()}
        return {"format": FORMAT, "config": self.config(), "vocabulary": self.vocabulary.to_dict(),
                "state_dict": sd, "source": self.source}

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Any = "<memory>") -> PPG:
        try:
            voc = Vocabulary.from_dict(data["vocabulary"])
            ppg = cls(vocabulary=voc, source=str(data.get("source", "")), **data["config"])
            ppg.load_state_dict({k: v.float() for k, v in data["state_dict"].items()})
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise SggInputError(f"not a valid {FORMAT} file ({exc})", path=path) from None
        return ppg.eval()

    def save(self, path: str | os.PathLike, half: bool = False) -> Path:
        """Write an ``sgg-ppg/1`` file atomically (``half``: fp16 weights, a quarter of the float64 size)."""
        return _save(self.to_dict(half=half), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PPG:
        """Any PPG file: STAR's release, an ``sgg-ppg/1`` file, or a ``PPGModule`` Lightning checkpoint."""
        return cls._from_file_data(_load(path), path)

    @classmethod
    def _from_file_data(cls, data: Any, path: str | os.PathLike) -> PPG:
        """:meth:`load` of the already loaded contents of ``path`` (read once)."""
        if isinstance(data, dict) and "model_state_dict1" in data:
            return cls._from_star_data(data, path)
        if isinstance(data, dict) and data.get("format") == FORMAT:
            return cls.from_dict(data, path)
        if isinstance(data, dict) and "sgg_ppg" in data and "state_dict" in data:
            meta = data["sgg_ppg"]
            sd = {k[len("ppg."):]: v for k, v in data["state_dict"].items() if k.startswith("ppg.")}
            return cls.from_dict({**meta, "state_dict": sd}, path)
        raise SggInputError("not a PPG file (STAR release, sgg-ppg/1 or PPGModule checkpoint)", path=path)


_BLOCK = 4096  # rows per pass through the autoencoders in score_onehot (measured: faster than 65536)


def _linears(ae: AutoEncoder, dev: torch.device, dt: torch.dtype) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, bias) of the autoencoder's four Linear layers, cast once."""
    return [(m.weight.to(dev, dt), m.bias.to(dev, dt)) for m in (*ae.encoder, *ae.decoder) if isinstance(m, nn.Linear)]


def _run(h: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """The remaining layers of an autoencoder: ReLU after each but the last, sigmoid after the last."""
    for k, (w, b) in enumerate(layers):
        h = torch.addmm(b, h, w.t())
        h = h.sigmoid_() if k == len(layers) - 1 else h.relu_()
    return h


def _onehot_error(w: torch.Tensor, s: torch.Tensor, o: torch.Tensor, x: torch.Tensor, c: int) -> torch.Tensor:
    """Σ (w − [one-hot(s), one-hot(o), x])² per row (the one-hots never built)."""
    cls = w[:, :2 * c].square().sum(1)
    cls -= 2 * (w.gather(1, s[:, None]).squeeze(1) + w.gather(1, (o + c)[:, None]).squeeze(1) - 1)
    return cls + (w[:, 2 * c:] - x).square_().sum(1)


def _save(data: dict[str, Any], path: str | os.PathLike) -> Path:
    """``torch.save`` ``data`` to ``path`` atomically (:func:`sgg.io.atomic.atomic_paths`)."""
    from sgg.io.atomic import atomic_paths

    path = Path(path)
    with atomic_paths(path) as (tmp,):
        torch.save(data, tmp)
    return path


def _load(path: str | os.PathLike) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SggInputError("PPG weights not found", path=path) from None
    except Exception as exc:  # noqa: BLE001 - pickle/zip errors of a damaged or foreign file
        raise SggInputError(f"cannot read PPG weights ({type(exc).__name__}: {exc})", path=path) from None
