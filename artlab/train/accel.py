"""What a GPU run does that a CPU run does not: bfloat16 autocast and channels_last (the card records both).

On CUDA, convolutions run fastest on NHWC tensors with tensor cores (channels_last) in reduced precision; bfloat16
keeps float32's range, so no loss scaling is needed, and it is used where the GPU supports it (Ampere and later).
On a CPU nothing changes: a 2-core CPU without AMX runs bfloat16 slower than float32, and the tests and the shipped
runs are float32.
"""

from __future__ import annotations

import contextlib
import dataclasses

import torch


@dataclasses.dataclass(frozen=True)
class Accel:
    autocast: torch.dtype | None = None
    channels_last: bool = False

    def context(self, device: torch.device):
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.autocast)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def card(self) -> dict:
        return {"autocast": str(self.autocast).removeprefix("torch.") if self.autocast else None,
                "channels_last": self.channels_last}


NONE = Accel()


def for_device(device: torch.device) -> Accel:
    if device.type != "cuda":
        return NONE
    bf16 = torch.cuda.is_bf16_supported()
    return Accel(autocast=torch.bfloat16 if bf16 else None, channels_last=True)
