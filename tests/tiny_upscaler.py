"""A tiny upscaler that spandrel recognises by its keys: a Real-ESRGAN Compact network (SRVGGNetCompact)
built from spandrel's own class, seeded, saved as safetensors — loaded back through the real
``ModelLoader`` path, as a downloaded ``realesr-general-x4v3`` would be."""

from __future__ import annotations

from pathlib import Path


def build_tiny_upscaler(file: Path, *, scale: int = 2, features: int = 8, convs: int = 2, seed: int = 0) -> Path:
    import torch
    from safetensors.torch import save_file

    from studio.engines.spandrel_import import import_spandrel

    spandrel = import_spandrel()
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(seed)
    model = Compact(num_in_ch=3, num_out_ch=3, num_feat=features, num_conv=convs, upscale=scale)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(0.5)  # small weights: the output stays near the nearest-neighbour base
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    assert spandrel.MAIN_REGISTRY.get("Compact").architecture.load(state).scale == scale  # spandrel knows it
    file.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(file))
    return file
