"""What params.yaml names that only the registries can tell: checked by the params check stage,
before any output is deleted, and by ``omniglot-mtl-recipe`` before it queues a run."""

import torch

from omniglot_mtl.core.devices import resolve_device
from omniglot_mtl.core.errors import ParamError, did_you_mean
from omniglot_mtl.core.params import Params, from_signature, one_of
from omniglot_mtl.models.backbones import BACKBONES
from omniglot_mtl.weighting.methods import METHODS, hyperparameters, make_weighting


def check_registered(params: Params) -> None:
    """The backbone, the weighting methods and the device of ``params``, asked of the code that
    defines them: the names are the registries' own; a backbone is built on torch's meta device
    (which allocates nothing), so that its constructor refuses an image size it cannot take;
    each method given in ``loss`` is built with its hyperparameters; the device must be one this
    machine has. Each fault is one :class:`ParamError` naming its key."""
    resolve_device(params.device)
    one_of("model.backbone", params.model.backbone, BACKBONES)
    one_of("loss.method", params.loss.method, METHODS)
    with torch.device("meta"):
        try:
            BACKBONES[params.model.backbone](params.data.image_size)
        except ValueError as err:
            raise ParamError("data.image_size", f"{err} (model.backbone: {params.model.backbone})") from None
    for method, given in params.loss.methods.items():
        if method not in METHODS:
            hint = did_you_mean(method, METHODS)
            raise ParamError(
                f"loss.{method}", f"not a loss weighting method{hint} (known: {', '.join(METHODS)})"
            )
        options = from_signature(hyperparameters(METHODS[method]), given, f"loss.{method}")
        try:
            make_weighting(params.loss.weights, method, options=options)
        except ValueError as err:  # "<hyperparameter>: <what is wrong>", the methods' convention
            name, _, message = str(err).partition(": ")
            raise ParamError(f"loss.{method}.{name}", message) from None
