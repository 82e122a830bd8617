"""``XCEBRA`` model files: what :meth:`XCEBRA.save` writes, and :meth:`XCEBRA.load`'s checks of every value.

A file is safetensors weights plus a JSON header (:mod:`xcebra._files`: atomic, checksummed, never
unpickled). Loading checks every value of the header against the stored tensors before using it: the
hyper-parameters must be valid, every declared size must match the weights actually stored (the encoder
is first built on the meta device, so a header claiming a huge model allocates nothing), and the log
and temperatures must have the shapes a fit writes.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from .. import __version__
from .._files import read_tensors, write_tensors
from .._validation import is_int, resolve_device
from ..models import make_encoder
from ..objectives import Objective
from ..session_models import make_session_embedders
from ._build import build_heads, build_networks
from ._params import check_constraints, params_to_json, resolved_bound, validate_params

__all__ = ["MODEL_FORMAT", "MODEL_FORMAT_VERSION", "MAX_OBJECTIVES_IN_FILE", "save_model", "load_model"]

MODEL_FORMAT = "xcebra-model"
MODEL_FORMAT_VERSION = 1
#: hyper-parameters introduced after format version 1, with the value older files imply
_ADDED_PARAMETERS = {"precision": "fp32", "lipschitz": None, "output_clip": None, "share_trunk": True}
#: a model file declaring more objectives than this is refused (the layout check is quadratic in their number)
MAX_OBJECTIVES_IN_FILE = 1024
#: errors that mean "this header does not describe a model"; each becomes one ValueError naming the file
_MALFORMED = (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError, OverflowError, RecursionError)


def save_model(estimator: Any, path: str | os.PathLike) -> None:
    """Write a fitted XCEBRA to ``path``: its weights, temperatures and log as tensors, the rest in the header.

    A multi-session model stores each weight once (``model.inputs.<s>.*`` per session: its input layer, or
    its whole network for separate encoders; ``model.trunk.*`` shared, if any), its anchors (``anchors.embedding``, ``anchors.session``, ``anchors.label.<name>``) and, in the
    header, ``n_sessions`` and one neuron count per session in ``n_features_in``.
    """
    sessions = getattr(estimator, "sessions_", None)
    network = estimator.encoder_ if sessions is None else sessions
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    for head in estimator._heads:
        tensors[f"temperature.{head.name}"] = head.temperature.log_value.detach().reshape(1)
    tensors.update({f"log.{k}": torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in estimator.log_.items()})
    header = {
        "format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "xcebra_version": __version__,
        "params": params_to_json(estimator), "n_features_in": estimator.n_features_in_,
        "random_state": estimator.random_state_, "log_keys": sorted(estimator.log_),
        "label_names": list(estimator.label_names_),
        "min_separation": dict(estimator.min_separation_),
        "label_dims": {name: estimator.label_dims_[name] for name in sorted(estimator.label_dims_)},
    }
    if sessions is not None:
        header["n_features_in"] = list(estimator.n_features_in_)
        header["n_sessions"] = len(sessions)
        header["min_separation"] = {k: list(v) for k, v in estimator.min_separation_.items()}
        anchors = estimator.anchors_
        header["anchor_labels"] = sorted(anchors["labels"])
        tensors["anchors.embedding"] = torch.from_numpy(np.ascontiguousarray(anchors["embedding"], dtype=np.float32))
        tensors["anchors.session"] = torch.from_numpy(np.ascontiguousarray(anchors["session"], dtype=np.int64))
        for name, label in anchors["labels"].items():
            tensors[f"anchors.label.{name}"] = torch.from_numpy(np.ascontiguousarray(label))
    write_tensors(path, tensors, header)


def _label_dims(header: dict) -> dict:
    """``label_dims`` of a model file: {label name: columns}; files written before it was recorded give {}."""
    dims = header.get("label_dims", {})
    if not isinstance(dims, dict) or not all(isinstance(k, str) and is_int(v, 1) for k, v in dims.items()):
        raise ValueError(f"label_dims must map label names to column counts >= 1; got {dims!r:.200}")
    if not set(dims) <= set(header["label_names"]):
        raise ValueError(f"label_dims names labels {sorted(set(dims) - set(header['label_names']))} "
                         "that label_names does not list")
    return dict(dims)


def _estimator_from_params(cls: type, params: Any, device: Any) -> Any:
    """An unfitted ``cls`` with the header's hyper-parameters, each checked as ``fit`` checks it."""
    if not isinstance(params, dict):
        raise TypeError(f"params must be a JSON object; got {type(params).__name__}")
    expected_names = set(cls._get_param_names())
    # parameters added after format version 1 was first written take their default when absent
    params = {**{k: v for k, v in _ADDED_PARAMETERS.items() if k not in params}, **params}
    if set(params) != expected_names:
        missing, extra = sorted(expected_names - set(params)), sorted(set(params) - expected_names)
        raise ValueError(f"params do not match XCEBRA's (missing {missing}, unexpected {extra})")
    raw_objectives = params["objectives"]
    if not isinstance(raw_objectives, list) or not 1 <= len(raw_objectives) <= MAX_OBJECTIVES_IN_FILE:
        raise ValueError(f"objectives must be a list of 1 to {MAX_OBJECTIVES_IN_FILE} entries")
    objectives = []
    for entry in raw_objectives:
        if not isinstance(entry, dict) or not isinstance(entry.get("dims"), list):
            raise TypeError(f"an objective must be a JSON object with a list 'dims'; got {entry!r:.200}")
        objectives.append(Objective(**{**entry, "dims": tuple(entry["dims"])}))
    params = dict(params, objectives=objectives, device=device)
    if isinstance(params["regularizer_ramp"], list):
        params["regularizer_ramp"] = tuple(params["regularizer_ramp"])
    model = cls(**params)
    check_constraints(model)
    return model


def _n_sessions(header: dict) -> int | None:
    """``n_sessions`` of a multi-session file (an int >= 1), None for a file of one recording."""
    n = header.get("n_sessions")
    if n is not None and not is_int(n, 1):
        raise ValueError(f"n_sessions must be an int >= 1; got {n!r:.100}")
    return n


def _check_header(header: dict) -> None:
    n_features, random_state = header["n_features_in"], header["random_state"]
    n_sessions = _n_sessions(header)
    if n_sessions is not None:
        if not isinstance(n_features, list) or len(n_features) != n_sessions or not all(is_int(v, 1) for v in n_features):
            raise ValueError(f"n_features_in must list {n_sessions} ints >= 1, one per session; got {n_features!r:.100}")
    elif not is_int(n_features, 1):
        raise ValueError(f"n_features_in must be an int >= 1; got {n_features!r:.100}")
    if random_state is not None and not is_int(random_state, 0):
        raise ValueError(f"random_state must be None or an int >= 0; got {random_state!r:.100}")
    for key in ("label_names", "log_keys"):
        if not isinstance(header[key], list) or not all(isinstance(v, str) for v in header[key]):
            raise TypeError(f"{key} must be a list of strings")


def _check_weights(model: Any, tensors: dict, header: dict) -> dict[str, torch.Tensor]:
    """The encoder's weights from the file, once every name, shape, dtype and value is what the header implies."""
    n_features = header["n_features_in"]
    # the tensors must be exactly those this model stores: nothing missing, nothing extra
    names = {f"temperature.{o.name}" for o in model.objectives} | {f"log.{k}" for k in header["log_keys"]}
    if _n_sessions(header) is not None:
        names |= {"anchors.embedding", "anchors.session"} | {f"anchors.label.{k}" for k in header["anchor_labels"]}
    weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    unexpected = sorted(k for k in tensors if not k.startswith("model.") and k not in names)
    missing = sorted(k for k in names if k not in tensors)
    if unexpected or missing:
        raise ValueError(f"its tensors do not match its header (missing {missing[:3]}, unexpected {unexpected[:3]})")
    # sizes: build the encoder on the meta device (no memory) and compare every shape with the file's
    # weights before anything real is allocated; a header claiming a huge model fails here
    try:
        with torch.device("meta"):
            if _n_sessions(header) is None:
                skeleton = make_encoder(model.model, n_features, model.hidden_units, model.output_dim,
                                        *resolved_bound(model))
                expected = {f"encoder.{k}": v for k, v in skeleton.state_dict().items()}
            else:
                layout = validate_params(model)
                skeleton = make_session_embedders(model.model, n_features, model.hidden_units, model.output_dim,
                                                  layout.blocks, layout.normalized, *resolved_bound(model),
                                                  share_trunk=model.share_trunk)
                expected = dict(skeleton.state_dict())
    except (RuntimeError, ValueError, OverflowError, MemoryError) as error:
        raise ValueError(f"its declared sizes cannot describe a model ({error})") from None
    if set(expected) != set(weights):
        raise ValueError(f"its weights do not match model {model.model!r} (expected {len(expected)} tensors "
                         f"named like {sorted(expected)[:2]}, found {len(weights)})")
    for key, value in expected.items():
        if weights[key].shape != value.shape or weights[key].dtype != value.dtype:
            raise ValueError(
                f"weight {key!r} has shape {tuple(weights[key].shape)} and dtype {weights[key].dtype}, but "
                f"n_features_in={n_features}, hidden_units={model.hidden_units}, output_dim={model.output_dim} "
                f"need {tuple(value.shape)} and {value.dtype}")
        if not bool(torch.isfinite(weights[key]).all()):
            raise ValueError(f"weight {key!r} holds non-finite values")
    return weights


def _read_log(tensors: dict, log_keys: list[str]) -> dict[str, np.ndarray]:
    log = {}
    for key in log_keys:
        value = tensors[f"log.{key}"]
        if value.ndim != 1 or value.dtype != torch.float64:
            raise ValueError(f"log entry {key!r} must be a 1-D float64 array; got shape {tuple(value.shape)} "
                             f"and dtype {value.dtype}")
        log[key] = value.numpy()
    if len({len(v) for v in log.values()}) > 1:
        raise ValueError("its log entries have different lengths")
    return log


def _from_file(cls: type, tensors: dict, header: dict, device: Any) -> Any:
    """The fitted model a file describes; every value is checked against the stored tensors before it is used."""
    model = _estimator_from_params(cls, header["params"], device)
    _check_header(header)
    weights = _check_weights(model, tensors, header)
    layout = validate_params(model)  # now cheap: output_dim matches a stored weight
    embedder, heads = build_networks(model, layout, header["n_features_in"], 0) if _n_sessions(header) is None else (
        make_session_embedders(model.model, header["n_features_in"], model.hidden_units, model.output_dim,
                               layout.blocks, layout.normalized, *resolved_bound(model),
                               share_trunk=model.share_trunk), build_heads(model))
    embedder.load_state_dict(weights, strict=True)
    for head in heads:
        value = tensors[f"temperature.{head.name}"]
        if value.shape != (1,) or not value.dtype.is_floating_point or not bool(torch.isfinite(value).all()):
            raise ValueError(f"temperature of objective {head.name!r} must be one finite float; got {value!r:.100}")
        head.temperature.log_value.data.copy_(value[0])
    model._set_trained_state(embedder, heads, {})
    model.layout_, model.blocks_ = layout, list(layout.blocks)
    model.log_ = _read_log(tensors, header["log_keys"])
    model.temperatures_ = {h.name: float(h.temperature().detach()) for h in heads}
    model.label_dims_ = _label_dims(header)
    if _n_sessions(header) is not None:
        model.n_sessions_ = header["n_sessions"]
        model.anchors_ = _read_anchors(tensors, header, model.output_dim)
    return model


def _read_anchors(tensors: dict, header: dict, output_dim: int) -> dict:
    """A multi-session file's anchors, once their shapes, dtypes and values agree with each other and the header."""
    embedding, session = tensors["anchors.embedding"], tensors["anchors.session"]
    count = embedding.shape[0] if embedding.ndim == 2 else -1
    if embedding.ndim != 2 or embedding.shape[1] != output_dim or embedding.dtype != torch.float32:
        raise ValueError(f"anchors.embedding must be a (K, {output_dim}) float32 array; got shape "
                         f"{tuple(embedding.shape)} and dtype {embedding.dtype}")
    if not bool(torch.isfinite(embedding).all()):
        raise ValueError("anchors.embedding holds non-finite values")
    if session.shape != (count,) or session.dtype != torch.int64 or (
            count and not (0 <= int(session.min()) and int(session.max()) < header["n_sessions"])):
        raise ValueError(f"anchors.session must be {count} session indices in 0..{header['n_sessions'] - 1}")
    labels = {}
    for name in header["anchor_labels"]:
        label = tensors[f"anchors.label.{name}"]
        if label.ndim not in (1, 2) or label.shape[0] != count:
            raise ValueError(f"anchors.label.{name} must have {count} rows; got shape {tuple(label.shape)}")
        labels[name] = label.numpy()
    return {"embedding": embedding.numpy(), "session": session.numpy(), "labels": labels}


def load_model(cls: type, path: str | os.PathLike, device: Any = "cpu") -> Any:
    """Read a model written by :func:`save_model` as an instance of ``cls`` on ``device`` (see ``XCEBRA.load``)."""
    target = resolve_device(device, cls.__name__)
    tensors, header = read_tensors(path, expected_format=MODEL_FORMAT)
    version = header.get("format_version")
    if not is_int(version) or version != MODEL_FORMAT_VERSION:
        raise ValueError(
            f"{str(path)!r} has model format version {version!r}; this xcebra ({__version__}) reads version "
            f"{MODEL_FORMAT_VERSION}. Upgrade xcebra to read it")
    try:
        model = _from_file(cls, tensors, header, device)
    except _MALFORMED as error:
        detail = f"missing entry {error}" if isinstance(error, KeyError) else str(error)
        raise ValueError(f"{str(path)!r} is not a consistent xcebra model file: {detail}") from error
    network = getattr(model, "sessions_", None)
    (model.encoder_ if network is None else network).to(target).eval()
    model.n_features_in_ = header["n_features_in"] if network is None else tuple(header["n_features_in"])
    model.random_state_ = header["random_state"]
    model.lipschitz_, model.output_clip_ = resolved_bound(model)
    model.label_names_ = tuple(header["label_names"])
    # files written before the separation was recorded lack it
    separation = header.get("min_separation", {})
    model.min_separation_ = ({str(k): int(v) for k, v in separation.items()} if network is None else
                             {str(k): tuple(int(x) for x in v) for k, v in separation.items()})
    return model

