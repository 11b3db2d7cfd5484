"""One registry for the pluggable backends: emotion models, frame encoders and explainers.

    MODELS.build("fer")                        # == emocore.models.load_model("fer")
    MODELS.build("trained:cache/models/m.pt")  # "NAME:ARGUMENT": the backend reads the argument
    ENCODERS.build("clip:ViT-B-32", "random", 0)
    EXPLAINERS.build("lime", predict).attribute(image, feature_mask=segments, labels=[3], n_samples=500, seed=0)

Contract:
- Each backend is a class that declares its own `NAME` (a class attribute); the tables below map
  that name to where the class lives ("module:attribute"). A backend's module is imported on first
  use only, so a heavy one (open_clip, torchvision, lime) costs nothing until it is asked for, and
  a missing optional dependency only fails the names that need it. `resolve` checks that the
  imported class's `NAME` is its key.
- A name is written "NAME" or "NAME:ARGUMENT". `build(spec, *args, **options)` calls the class's
  `from_name(argument, *args, **options)` with the text after the first ":" (None without one);
  each backend decides what its argument means and whether it takes one (the base classes take
  none), raising the registry's error otherwise. The arguments after the spec are the kind's own:
  a model takes keyword options, an encoder `(weights, seed)`, an explainer the prediction function.
- An unknown name raises the kind's named error (`UnknownModel` for models and frame encoders,
  `UnknownExplainer` for explainers) listing every known name, written as help texts show it
  (`Backend.usage`: "trained:PATH").
- `FEATURE_SOURCES` is the frame encoders' sibling: features a video file gives as a whole (its
  soundtrack, its faces), built by `emocore.features.make_encoder` too (`(weights)` only).
- The registries have the same shape; adding a backend is one file (its class with a
  `NAME`) and one line in its table here (see the README, "Contributing a model").
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from emocore.errors import UnknownExplainer, UnknownModel


@dataclass(frozen=True)
class Backend:
    """Where a backend class lives, imported on first use, and how its name is written in help texts."""

    target: str
    """"module:attribute", e.g. "emocore.models.fer:FaceEmotionModel"."""
    usage: str | None = None
    """The name as help texts and errors show it when it takes an argument ("trained:PATH"); None: the name."""

    def __post_init__(self) -> None:
        module, colon, attribute = self.target.partition(":")
        if not (module and colon and attribute):
            raise ValueError(f"a backend target is 'module:attribute', got {self.target!r}")


class Registry:
    """Backends of one kind by name, built from the table given (see the module docstring)."""

    def __init__(self, kind: str, plural: str, error: type[Exception], backends: Mapping[str, str | Backend],
                 default: str | None = None) -> None:
        self.kind = kind
        """What a backend is, in messages: "model", "frame encoder", "explanation method"."""
        self.plural = plural
        self.error = error
        """The named error raised for a name that is not registered (or a backend's bad argument)."""
        self.default = default
        self._backends: dict[str, Backend] = {}
        for name, target in backends.items():
            self.register(name, target)
        if default is not None and default not in self._backends:
            raise ValueError(f"the default {kind} {default!r} is not registered")

    def register(self, name: str, target: str | Backend) -> None:
        """Add (or replace) the backend `name`: "module:attribute" or a `Backend`."""
        if not name or ":" in name or name != name.strip():
            raise ValueError(f"a {self.kind} name is a non-empty word without ':', got {name!r}")
        self._backends[name] = target if isinstance(target, Backend) else Backend(target)

    def unregister(self, name: str) -> None:
        """Remove the backend `name` (KeyError if it is not registered)."""
        del self._backends[name]

    def __contains__(self, name: object) -> bool:
        return name in self._backends

    def names(self) -> list[str]:
        """Every registered name: the default first, then in alphabetical order."""
        return sorted(self._backends, key=lambda name: (name != self.default, name))

    def usages(self) -> list[str]:
        """`names()` as help texts write them ("trained:PATH")."""
        return [self._backends[name].usage or name for name in self.names()]

    def backend(self, name: str) -> Backend:
        """The table entry of `name`; the registry's error listing the known names if there is none."""
        found = self._backends.get(name)
        if found is None:
            raise self.error(f"unknown {self.kind} {name!r}; known {self.plural}: {', '.join(self.usages())}")
        return found

    def resolve(self, name: str) -> Any:
        """The backend class registered as `name` (its module imported now). A backend whose module
        cannot be imported here (a missing optional dependency) raises the registry's error."""
        entry = self.backend(name)
        module_name, _, attribute = entry.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise self.error(f"{self.kind} {name!r} is not available here ({exc})") from exc
        found = getattr(module, attribute, None)
        if found is None:
            raise self.error(f"{self.kind} {name!r}: {module_name} has no {attribute}")
        declared = getattr(found, "NAME", None)
        if declared != name:
            raise TypeError(f"{entry.target} declares NAME {declared!r} but is registered as {name!r}")
        return found

    def build(self, spec: str, *args: Any, **options: Any) -> Any:
        """The backend `spec` names ("NAME" or "NAME:ARGUMENT"), built by its class's `from_name`."""
        name, colon, argument = str(spec).partition(":")
        if name not in self._backends:  # the whole spec in the message: what the user wrote
            raise self.error(f"unknown {self.kind} {spec!r}; known {self.plural}: {', '.join(self.usages())}")
        return self.resolve(name).from_name(argument if colon else None, *args, **options)


#: Emotion models (`emocore.models.EmotionModel`): `load_model(spec, **options)`.
MODELS = Registry("model", "models", UnknownModel, {
    "fer": "emocore.models.fer:FaceEmotionModel",
    "clip": "emocore.models.clip:ClipModel",
    "trained": Backend("emocore.models.trained:TrainedModel", usage="trained:PATH"),
}, default="fer")

#: Frame encoders for training (`emocore.features.FrameEncoder`): `make_encoder(spec, weights, seed)`.
ENCODERS = Registry("frame encoder", "frame encoders", UnknownModel, {
    "resnet18": "emocore.features:ResNet18Encoder",
    "mobilenet_v3_small": "emocore.features:MobileNetV3SmallEncoder",
    "mobilenet_v3_large": "emocore.features:MobileNetV3LargeEncoder",
    "efficientnet_b0": "emocore.features:EfficientNetB0Encoder",
    "clip": Backend("emocore.models.clip_encoder:ClipEncoder", usage="clip:ARCH"),
})

#: Video feature sources for training (`emocore.features.VideoFeatureSource`: features read from the whole
#: file, not from one image): `make_encoder(spec, weights)` builds them too, and "A+B" combines them.
FEATURE_SOURCES = Registry("feature source", "feature sources", UnknownModel, {
    "audioset": Backend("emocore.models.feature_sources:AudioSetFeatures", usage="audioset[:embedding]"),
    "faces": "emocore.models.feature_sources:FaceFeatures",
})

#: Explainers (`emocore.attribution.Explainer`): `EXPLAINERS.build(name, predict).attribute(...)`.
EXPLAINERS = Registry("explanation method", "explanation methods", UnknownExplainer, {
    "lime": "emocore.attribution:Lime",
    "shap": "emocore.attribution:KernelShap",
})


__all__ = ["ENCODERS", "EXPLAINERS", "FEATURE_SOURCES", "MODELS", "Backend", "Registry"]
