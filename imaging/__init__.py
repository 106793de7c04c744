"""imaging: the FLEP three-layer image protection pipeline (chaotic scrambling, DWT alpha
blending, AWGN decoded with a DnCNN denoiser), an optional keyed diffusion layer, and the
NPCR/UACI/entropy metrics. See docs/imaging.md.

``FlepKey``, ``FlepPipeline``, ``FlepCipher`` and ``paper_pipeline`` are importable from
here; they are loaded on first use so that ``import imaging`` stays cheap."""

_EXPORTS = {
    "FlepKey": "imaging.key",
    "FlepPipeline": "imaging.pipeline",
    "FlepCipher": "imaging.pipeline",
    "paper_pipeline": "imaging.pipeline",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'imaging' has no attribute {name!r}")
