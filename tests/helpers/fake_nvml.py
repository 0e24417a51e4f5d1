"""A fake pynvml: NVML's function names answering from plain dicts, for tests without GPUs.

Shared by the GPU health tests and the preflight tests, which read GPUs through the same
reader (nccldoctor.gpuhealth.read_gpus).
"""

from __future__ import annotations

from types import SimpleNamespace

# NVML return codes (nvml.h) the fake raises.
INVALID_ARGUMENT, NOT_FOUND = 2, 6
NOT_SUPPORTED, NO_PERMISSION, DRIVER_NOT_LOADED, FUNCTION_NOT_FOUND, GPU_IS_LOST = 3, 4, 9, 13, 15
UNKNOWN = 999
# nvmlComputeMode_t
COMPUTEMODE_DEFAULT, COMPUTEMODE_PROHIBITED, COMPUTEMODE_EXCLUSIVE_PROCESS = 0, 2, 3
_MESSAGES = {
    INVALID_ARGUMENT: "Invalid Argument",
    NOT_FOUND: "Not Found",
    UNKNOWN: "Unknown Error",
    NOT_SUPPORTED: "Not Supported",
    NO_PERMISSION: "Insufficient Permissions",
    DRIVER_NOT_LOADED: "Driver Not Loaded",
    FUNCTION_NOT_FOUND: "Function Not Found",
    GPU_IS_LOST: "GPU is lost",
}


class NVMLError(Exception):
    """Like pynvml.NVMLError: the NVML return code in .value."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _MESSAGES.get(self.value, f"NVML error {self.value}")


def fake_nvml(
    gpus: list[dict], *, init_error: int | None = None, drop: tuple[str, ...] = (), max_links: int = 18
) -> SimpleNamespace:
    """A module-like object with pynvml's function names, answering from `gpus` (one dict per GPU).

    A GPU's dict maps an NVML function name to its answer: a value, a dict keyed by the call's
    arguments, an NVMLError to raise, or a function called with (handle, *args) each time (an
    answer that changes while the test runs). A function the dict lacks raises NotSupported, as
    NVML does for a feature the board does not have. `drop` removes functions (an older binding).
    `{"lost": True}` is a GPU whose handle cannot be had (GPU is lost); `{"handle_error": code}`
    one whose handle fails with another NVML error. `max_links` is the binding's
    NVML_NVLINK_MAX_LINKS (18 in 12.x bindings, 36 in newer ones). An NVLink answer dict may map
    link numbers to INVALID_ARGUMENT past the GPU's last link, as the library does.
    """
    calls = {"init": 0, "shutdown": 0}

    def init():
        calls["init"] += 1
        if init_error is not None:
            raise NVMLError(init_error)

    def shutdown():
        calls["shutdown"] += 1

    def handle(index):
        if gpus[index].get("lost"):
            raise NVMLError(GPU_IS_LOST)
        if "handle_error" in gpus[index]:
            raise NVMLError(gpus[index]["handle_error"])
        return index

    def device_fn(name):
        def fn(handle, *args):
            answer = gpus[handle].get(name, NVMLError(NOT_SUPPORTED))
            if callable(answer):
                answer = answer(handle, *args)
            if isinstance(answer, dict):
                key = args[0] if len(args) == 1 else args
                answer = answer.get(key, NVMLError(NOT_SUPPORTED))
            if isinstance(answer, NVMLError):
                raise answer
            return answer

        return fn

    def handle_by_uuid(uuid):
        for index, spec in enumerate(gpus):
            if spec.get("nvmlDeviceGetUUID") == uuid:
                return handle(index)
        raise NVMLError(NOT_FOUND)

    device_fns = {name: device_fn(name) for spec in gpus for name in spec if name.startswith("nvmlDevice")}
    module = SimpleNamespace(
        NVMLError=NVMLError,
        NVML_NVLINK_MAX_LINKS=max_links,
        NVML_COMPUTEMODE_DEFAULT=COMPUTEMODE_DEFAULT,
        NVML_COMPUTEMODE_PROHIBITED=COMPUTEMODE_PROHIBITED,
        NVML_COMPUTEMODE_EXCLUSIVE_PROCESS=COMPUTEMODE_EXCLUSIVE_PROCESS,
        calls=calls,
        nvmlInit=init,
        nvmlShutdown=shutdown,
        nvmlSystemGetDriverVersion=lambda: "535.183.01",
        nvmlDeviceGetCount=lambda: len(gpus),
        nvmlDeviceGetHandleByIndex=handle,
        nvmlDeviceGetHandleByUUID=handle_by_uuid,
        **device_fns,
    )
    for name in drop:
        delattr(module, name)
    return module
