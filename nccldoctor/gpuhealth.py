"""GPU health from NVML: one reading per GPU, the decisions on it, and rows for a health table.

`read_gpus()` asks NVML (nvidia-ml-py, `import pynvml`) about every GPU of this node. Any call may
fail (NotSupported on consumer boards, NoPermission in some containers, GPU lost): the field is
left None and the node's other readings stay; without a driver the inventory says so
(`available=False`) and nothing is judged. `watch_gpus()` does the same but reads each GPU's
load again and again until told to stop and keeps its busiest reading: the bench's health phase
watches this way while its measurements run, since the load rules below need a busy GPU. The
readings are plain data so they travel through the key-value store: `to_json()` / `from_json()`.

`judge_gpus()` turns the readings of every node into findings. Every number it compares against is
in `Thresholds`, with the reason for its default next to it. Two readings only mean something
while the GPU is busy, and are judged only then:

- PCIe generation. NVIDIA's own field help says the current generation and width "may be reduced
  when the GPU is not in use" (`nvidia-smi --help-query-gpu`); the driver ties the link speed to
  the performance state (P8 -> Gen1, P0 -> full speed, NVIDIA/open-gpu-kernel-modules#731). Public
  dumps show the idle drop in the generation only, at full width ("GEN 1@16x", Syllo/nvtop#6;
  "Speed 2.5GT/s (downgraded), Width x16 (ok)", janhq/jan#183). So the width is judged always (a
  narrower link is what a badly seated card or riser, or a bifurcation setting, gives) and the
  generation only under load (`Thresholds.busy_utilization_pct`).
- Software clock limits (SW power cap, SW thermal slowdown). An idle GPU sits at idle clocks
  anyway, and consumer boards report "SW Power Cap: Active" in P8 (the RTX 2080 fixture). Hardware
  limits (HW slowdown, HW thermal, HW power brake) come from outside the driver and are judged at
  any load; all of them only while the SM clock is below `throttle_clock_fraction` of its maximum,
  since a reason can be flagged while the clock is still at its maximum (the H100 fixture at
  1980/1980 MHz with the power-brake bit set).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from nccldoctor.findings import Finding, make_finding

# nvml.h enum values (a stable ABI), kept here so that a fake module needs only the functions.
_CLOCK_SM, _CLOCK_MEM = 1, 2  # nvmlClockType_t
_TEMPERATURE_GPU = 0  # nvmlTemperatureSensors_t
_CORRECTED, _UNCORRECTED = 0, 1  # nvmlMemoryErrorType_t
_VOLATILE, _AGGREGATE = 0, 1  # nvmlEccCounterType_t
_RETIRED_SBE, _RETIRED_DBE = 0, 1  # nvmlPageRetirementCause_t
_FEATURE_ENABLED = 1  # nvmlEnableState_t: an active NVLink, a pending retirement
# NVML_NVLINK_MAX_LINKS: 18 in 12.x bindings, 36 in newer ones. The library checks the link number
# itself, so an older binding's constant must not hide links 18-35 of a newer GPU: ask up to 36.
_NVLINK_MAX_LINKS = 36
_ERROR_INVALID_ARGUMENT = 2  # a link number past the GPU's last link: no more links to ask about
_ERROR_NOT_SUPPORTED, _ERROR_FUNCTION_NOT_FOUND = 3, 13  # a missing feature: the field stays None
_ERROR_GPU_IS_LOST, _ERROR_RESET_REQUIRED = 15, 16  # the GPU itself is gone: judged unhealthy
# Between two load readings in watch_gpus. NVML's utilisation covers its last sample period (1/6 s
# to 1 s), so readings this close together miss no busy period; each costs ~10 calls per GPU.
WATCH_INTERVAL_S = 0.05

# nvmlClocksEventReason* bits (nvmlClocksThrottleReason* in older headers, same values).
CLOCK_REASONS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
    0x200: "board_limit",
    0x400: "reliability",
}
# nvmlComputeMode_t. EXCLUSIVE_PROCESS allows one CUDA context on the GPU: the sweeps' child
# processes cannot open theirs while the bench holds its own (exclusive_ranks).
COMPUTE_MODES: dict[int, str] = {0: "default", 1: "exclusive_thread", 2: "prohibited", 3: "exclusive_process"}
EXCLUSIVE_PROCESS = 3
SW_LIMITS = frozenset({"sw_power_cap", "sw_thermal_slowdown"})
HW_LIMITS = frozenset({"hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown"})


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """Every limit judge_gpus() applies; the defaults and why."""

    # Uncorrectable ECC errors since the driver loaded: one already killed a CUDA context.
    ecc_uncorrected_volatile_max: int = 0
    # Lifetime uncorrectable count; None: not judged, since an error the driver recovered from by
    # remapping a row leaves the counter up on a good GPU (NVIDIA's A100/H100 memory-error guide).
    ecc_uncorrected_aggregate_max: int | None = None
    # Retired pages (SBE + DBE, pre-Ampere): DCGM fails a GPU at 60 (DCGM_LIMIT_MAX_RETIRED_PAGES;
    # newer DCGM says 63, matching NVIDIA's field diagnostic); the lower one warns a little earlier.
    retired_pages_limit: int = 60
    # Rows remapped for uncorrectable errors: NVIDIA's RMA policy sets the failure flag after 512.
    remapped_rows_uncorrectable_limit: int = 512
    # A clock limit counts while the SM clock is below this fraction of its maximum; boost clocks
    # wander a few percent below max on a healthy GPU (2025 of 2100 MHz, wookayin/gpustat#135).
    throttle_clock_fraction: float = 0.9
    # GPU utilization (% of NVML's sample period with a kernel running) at which a GPU counts as
    # busy: a benchmark reads 90-100 %, an idle GPU 0 %, so the middle needs no tuning.
    busy_utilization_pct: int = 50
    # Judge the PCIe width only under load too, for platforms that narrow idle links.
    pcie_width_needs_load: bool = False
    # NVLinks a GPU may report inactive while other links on the node are active.
    nvlink_inactive_max: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.throttle_clock_fraction <= 1:
            raise ValueError(f"throttle_clock_fraction={self.throttle_clock_fraction}: must be in (0, 1]")
        if not 0 <= self.busy_utilization_pct <= 100:
            raise ValueError(f"busy_utilization_pct={self.busy_utilization_pct}: must be 0..100")
        counts = (
            "ecc_uncorrected_volatile_max",
            "retired_pages_limit",
            "remapped_rows_uncorrectable_limit",
            "nvlink_inactive_max",
        )
        for name in counts:
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)}: must be >= 0")


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class GpuReading:
    """One GPU as NVML reported it; None: NVML could not say (not supported, or the call failed)."""

    index: int  # NVML index (PCI bus order, not CUDA_VISIBLE_DEVICES order)
    name: str | None = None
    uuid: str | None = None
    bus_id: str | None = None  # "00000000:53:00.0"
    sm_clock_mhz: int | None = None
    sm_clock_max_mhz: int | None = None
    mem_clock_mhz: int | None = None
    mem_clock_max_mhz: int | None = None
    clock_reasons: int | None = None  # bitmask of CLOCK_REASONS; see .reasons
    utilization_pct: int | None = None
    temperature_c: int | None = None
    power_w: float | None = None
    power_limit_w: float | None = None  # the enforced limit
    ecc_corrected_volatile: int | None = None
    ecc_uncorrected_volatile: int | None = None
    ecc_corrected_aggregate: int | None = None
    ecc_uncorrected_aggregate: int | None = None
    retired_pages_sbe: int | None = None  # pre-Ampere page retirement
    retired_pages_dbe: int | None = None
    retired_pages_pending: bool | None = None
    remapped_rows_correctable: int | None = None  # Ampere and later row remapping
    remapped_rows_uncorrectable: int | None = None
    remapped_rows_pending: bool | None = None
    remapped_rows_failure: bool | None = None
    pcie_gen: int | None = None
    pcie_gen_max: int | None = None  # the most this GPU and this slot allow together
    pcie_width: int | None = None
    pcie_width_max: int | None = None
    nvlink: tuple[bool | None, ...] = ()  # per link: active, inactive, None (no such link)
    compute_mode: int | None = None  # nvmlComputeMode_t: COMPUTE_MODES
    errors: dict[str, str] = field(default_factory=dict)  # field -> NVML error other than NotSupported
    error: str = ""  # NVML lost this GPU (no handle, GPU is lost): judged unhealthy

    @property
    def reasons(self) -> tuple[str, ...]:
        """The clock event reasons set in `clock_reasons`, by name."""
        mask = self.clock_reasons or 0
        bits = [1 << n for n in range(mask.bit_length()) if mask >> n & 1]
        return tuple(CLOCK_REASONS.get(bit, f"bit_{bit:#x}") for bit in bits)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GpuReading:
        """Rebuild from to_json()'s dict after a trip through JSON (lists back to tuples)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        return cls(
            **{**values, "nvlink": tuple(values.get("nvlink", ())), "errors": dict(values.get("errors", {}))}
        )


@dataclass(frozen=True)
class GpuInventory:
    """One node's GPUs; available=False (with the reason in `error`) when NVML cannot start."""

    available: bool
    error: str = ""
    driver_version: str | None = None
    gpus: tuple[GpuReading, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GpuInventory:
        return cls(
            available=bool(data["available"]),
            error=data.get("error", ""),
            driver_version=data.get("driver_version"),
            gpus=tuple(GpuReading.from_json(g) for g in data.get("gpus", ())),
        )


# --- reading --------------------------------------------------------------------------------------


def read_gpus(nvml: Any = None) -> GpuInventory:
    """Every GPU of this node as NVML reports it; never raises for NVML's sake.

    `nvml` is the pynvml module, or in tests any object with the same function names and an
    `NVMLError` class carrying the NVML return code in `.value`. NVML is always shut down again.
    """
    return _with_nvml(nvml, _read_inventory)


def watch_gpus(
    stop: threading.Event, nvml: Any = None, interval_s: float = WATCH_INTERVAL_S, max_s: float = 3600.0
) -> GpuInventory:
    """Read every GPU, then its load again and again until `stop` (or `max_s`), keeping the busiest.

    Why: the load rules (software clock limits, the PCIe generation) mean something only while the
    GPU works, and the GPU part of the health measurements is over in well under a second on an
    H100, so one reading after it sees an idle GPU. The loaded fields of each GPU (clocks, reasons,
    utilisation, temperature, power, PCIe link) all come from its busiest reading, so they describe
    one moment; the counters (ECC, retired pages, remapped rows, NVLink) are read once.
    """

    def watch(lib: Any) -> GpuInventory:
        inventory = _read_inventory(lib)
        deadline = time.monotonic() + max_s
        while inventory.available and not stop.wait(interval_s) and time.monotonic() < deadline:
            inventory = replace(
                inventory, gpus=tuple(_busier(gpu, _read_load(lib, gpu)) for gpu in inventory.gpus)
            )
        return inventory

    return _with_nvml(nvml, watch)


def _with_nvml(nvml: Any, read: Callable[[Any], GpuInventory]) -> GpuInventory:
    """`read(nvml)` between nvmlInit and nvmlShutdown; without a driver, an inventory saying why."""
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            return GpuInventory(available=False, error="NVML not available: nvidia-ml-py is not installed")
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        return GpuInventory(available=False, error=f"NVML not available: {exc}")
    try:
        return read(nvml)
    finally:
        with contextlib.suppress(nvml.NVMLError):  # a failed shutdown leaves nothing to release
            nvml.nvmlShutdown()


def _read_inventory(nvml: Any) -> GpuInventory:
    try:
        count = nvml.nvmlDeviceGetCount()
    except nvml.NVMLError as exc:
        return GpuInventory(available=False, error=f"NVML cannot count GPUs: {exc}")
    try:
        driver: str | None = _text(nvml.nvmlSystemGetDriverVersion())
    except nvml.NVMLError:
        driver = None
    return GpuInventory(
        available=True, driver_version=driver, gpus=tuple(_read_gpu(nvml, i) for i in range(count))
    )


def _read_gpu(nvml: Any, index: int) -> GpuReading:
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
    except nvml.NVMLError as exc:
        return GpuReading(index=index, error=f"no NVML handle: {exc}")
    calls = _Calls(nvml, handle)
    values: dict[str, Any] = {"index": index}
    for reader in _READERS:
        values.update(reader(calls))
    return GpuReading(**values, nvlink=_nvlink_states(nvml, handle), errors=calls.errors, error=calls.fatal)


class _Calls:
    """NVML calls on one GPU: a missing feature gives None, other failures are noted."""

    def __init__(self, nvml: Any, handle: Any) -> None:
        self.nvml, self.handle = nvml, handle
        self.errors: dict[str, str] = {}
        self.fatal = ""

    def get(self, label: str, *fn_names: str, args: tuple = ()) -> Any:
        """The first of `fn_names` that the binding and the driver both have (older names last)."""
        for fn_name in fn_names:
            fn = getattr(self.nvml, fn_name, None)
            if fn is None:
                continue
            try:
                return fn(self.handle, *args)
            except self.nvml.NVMLError as exc:
                if getattr(exc, "value", None) == _ERROR_FUNCTION_NOT_FOUND:
                    continue
                self._note(label, exc)
                return None
        return None

    def _note(self, label: str, exc: Exception) -> None:
        code = getattr(exc, "value", None)
        if code == _ERROR_NOT_SUPPORTED:
            return
        self.errors[label] = str(exc)
        if code in (_ERROR_GPU_IS_LOST, _ERROR_RESET_REQUIRED) and not self.fatal:
            self.fatal = f"{label}: {exc}"


def _identity(c: _Calls) -> dict[str, Any]:
    pci = c.get("bus_id", "nvmlDeviceGetPciInfo")
    return {
        "name": _text(c.get("name", "nvmlDeviceGetName")),
        "uuid": _text(c.get("uuid", "nvmlDeviceGetUUID")),
        "bus_id": _text(getattr(pci, "busId", None)),
        "compute_mode": c.get("compute_mode", "nvmlDeviceGetComputeMode"),
    }


def _clocks(c: _Calls) -> dict[str, Any]:
    util = c.get("utilization_pct", "nvmlDeviceGetUtilizationRates")
    return {
        "sm_clock_mhz": c.get("sm_clock_mhz", "nvmlDeviceGetClockInfo", args=(_CLOCK_SM,)),
        "sm_clock_max_mhz": c.get("sm_clock_max_mhz", "nvmlDeviceGetMaxClockInfo", args=(_CLOCK_SM,)),
        "mem_clock_mhz": c.get("mem_clock_mhz", "nvmlDeviceGetClockInfo", args=(_CLOCK_MEM,)),
        "mem_clock_max_mhz": c.get("mem_clock_max_mhz", "nvmlDeviceGetMaxClockInfo", args=(_CLOCK_MEM,)),
        "clock_reasons": c.get(
            "clock_reasons",
            "nvmlDeviceGetCurrentClocksEventReasons",
            "nvmlDeviceGetCurrentClocksThrottleReasons",  # its name in older bindings and drivers
        ),
        "utilization_pct": getattr(util, "gpu", None),
    }


def _thermal_power(c: _Calls) -> dict[str, Any]:
    return {
        "temperature_c": c.get("temperature_c", "nvmlDeviceGetTemperature", args=(_TEMPERATURE_GPU,)),
        "power_w": _watts(c.get("power_w", "nvmlDeviceGetPowerUsage")),
        "power_limit_w": _watts(
            c.get("power_limit_w", "nvmlDeviceGetEnforcedPowerLimit", "nvmlDeviceGetPowerManagementLimit")
        ),
    }


def _ecc(c: _Calls) -> dict[str, Any]:
    def total(label: str, kind: int, counter: int) -> int | None:
        return c.get(label, "nvmlDeviceGetTotalEccErrors", args=(kind, counter))

    return {
        "ecc_corrected_volatile": total("ecc_corrected_volatile", _CORRECTED, _VOLATILE),
        "ecc_uncorrected_volatile": total("ecc_uncorrected_volatile", _UNCORRECTED, _VOLATILE),
        "ecc_corrected_aggregate": total("ecc_corrected_aggregate", _CORRECTED, _AGGREGATE),
        "ecc_uncorrected_aggregate": total("ecc_uncorrected_aggregate", _UNCORRECTED, _AGGREGATE),
    }


def _retired_pages(c: _Calls) -> dict[str, Any]:
    sbe = c.get("retired_pages_sbe", "nvmlDeviceGetRetiredPages", args=(_RETIRED_SBE,))
    dbe = c.get("retired_pages_dbe", "nvmlDeviceGetRetiredPages", args=(_RETIRED_DBE,))
    pending = c.get("retired_pages_pending", "nvmlDeviceGetRetiredPagesPendingStatus")
    return {
        "retired_pages_sbe": None if sbe is None else len(sbe),
        "retired_pages_dbe": None if dbe is None else len(dbe),
        "retired_pages_pending": None if pending is None else pending == _FEATURE_ENABLED,
    }


def _remapped_rows(c: _Calls) -> dict[str, Any]:
    rows = c.get("remapped_rows", "nvmlDeviceGetRemappedRows")
    if rows is None:
        return {}
    corrected, uncorrected, pending, failure = rows
    return {
        "remapped_rows_correctable": corrected,
        "remapped_rows_uncorrectable": uncorrected,
        "remapped_rows_pending": bool(pending),
        "remapped_rows_failure": bool(failure),
    }


def _pcie_link(c: _Calls) -> dict[str, Any]:
    return {
        "pcie_gen": c.get("pcie_gen", "nvmlDeviceGetCurrPcieLinkGeneration"),
        "pcie_gen_max": c.get("pcie_gen_max", "nvmlDeviceGetMaxPcieLinkGeneration"),
        "pcie_width": c.get("pcie_width", "nvmlDeviceGetCurrPcieLinkWidth"),
        "pcie_width_max": c.get("pcie_width_max", "nvmlDeviceGetMaxPcieLinkWidth"),
    }


_READERS: tuple[Callable[[_Calls], dict[str, Any]], ...] = (
    _identity,
    _clocks,
    _thermal_power,
    _ecc,
    _retired_pages,
    _remapped_rows,
    _pcie_link,
)


# What changes with the GPU's load: read again while the GPUs work (watch_gpus).
_LOAD_READERS: tuple[Callable[[_Calls], dict[str, Any]], ...] = (_clocks, _thermal_power, _pcie_link)


def _read_load(nvml: Any, gpu: GpuReading) -> GpuReading:
    """`gpu` with its load fields read again; a GPU NVML has lost stays as it was, or turns lost."""
    if gpu.error:
        return gpu
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(gpu.index)
    except nvml.NVMLError as exc:
        return replace(gpu, error=f"no NVML handle: {exc}")
    calls = _Calls(nvml, handle)
    values: dict[str, Any] = {}
    for reader in _LOAD_READERS:
        values.update(reader(calls))
    return replace(gpu, **values, errors={**gpu.errors, **calls.errors}, error=calls.fatal)


def _busier(kept: GpuReading, new: GpuReading) -> GpuReading:
    """The reading to keep of two: a lost GPU first (it must be judged), else the busier one."""
    if kept.error or new.error:
        return kept if kept.error else new
    return new if _load(new) > _load(kept) else kept


def _load(gpu: GpuReading) -> tuple[int, bool]:
    """How busy a reading shows the GPU: utilisation first, then the idle reason being off."""
    util = -1 if gpu.utilization_pct is None else gpu.utilization_pct
    return util, "gpu_idle" not in gpu.reasons


def _nvlink_states(nvml: Any, handle: Any) -> tuple[bool | None, ...]:
    """Each link's state, asked link by link up to the GPU's last one.

    A link number past the last one fails with InvalidArgument: the count is then known. Any
    other failure (NotSupported on a PCIe card, or on a link fused off) reads None and the next
    link is asked; trailing Nones are dropped, so a PCIe card has no links at all.
    """
    fn = getattr(nvml, "nvmlDeviceGetNvLinkState", None)
    if fn is None:
        return ()
    states: list[bool | None] = []
    for link in range(max(getattr(nvml, "NVML_NVLINK_MAX_LINKS", 0), _NVLINK_MAX_LINKS)):
        try:
            states.append(fn(handle, link) == _FEATURE_ENABLED)
        except nvml.NVMLError as exc:
            if getattr(exc, "value", None) == _ERROR_INVALID_ARGUMENT:
                break
            states.append(None)
    while states and states[-1] is None:
        states.pop()
    return tuple(states)


def _text(value: str | bytes | None) -> str | None:
    return value.decode(errors="replace") if isinstance(value, bytes) else value  # older pynvml: bytes


def _watts(milliwatts: int | None) -> float | None:
    return None if milliwatts is None else round(milliwatts / 1000, 2)


def read_compute_mode(uuid: str, nvml: Any = None) -> int | None:
    """The compute mode of the GPU NVML names `uuid` ("GPU-..."); None when NVML cannot say."""
    if not uuid:
        return None
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            return None
    try:
        nvml.nvmlInit()
    except nvml.NVMLError:
        return None
    try:
        return nvml.nvmlDeviceGetComputeMode(nvml.nvmlDeviceGetHandleByUUID(uuid))
    except (nvml.NVMLError, AttributeError):  # not one of this node's GPUs, an old binding
        return None
    finally:
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()


def exclusive_ranks(modes: Mapping[int, int | None]) -> list[int]:
    """The ranks (of `modes`: rank -> its GPU's compute mode) whose GPU takes one process only.

    A sweep's children each need a CUDA context on their rank's GPU while the bench process still
    holds its own, so on such a GPU every child fails; every rank decides from the same modes.
    """
    return sorted(rank for rank, mode in modes.items() if mode == EXCLUSIVE_PROCESS)


def children_blocked(sweep: str, ranks: list[int], nodes: Iterable[int] = ()) -> Finding:
    """The one finding a sweep gives instead of failing each setting on exclusive-process GPUs."""
    return make_finding(
        "probe_skipped",
        f"{sweep}: not run, the GPU of rank(s) {', '.join(map(str, ranks))} is in EXCLUSIVE_PROCESS "
        "compute mode: the sweep's child processes cannot open a CUDA context beside the bench's",
        ranks=ranks,
        nodes=nodes,
        evidence={"compute_mode": COMPUTE_MODES[EXCLUSIVE_PROCESS], "ranks": ranks},
        fix="On those nodes, as root: nvidia-smi -c DEFAULT (or -i <gpu> -c DEFAULT for one GPU), then "
        "rerun; or run the sweep where the GPUs are in DEFAULT mode.",
    )


# --- decisions ------------------------------------------------------------------------------------


def judge_gpus(
    inventories: Mapping[int, GpuInventory],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    job_gpus: Mapping[int, Collection[str]] | None = None,
) -> list[Finding]:
    """Findings for every node's GPUs (keyed by node rank); nodes without NVML give none.

    `job_gpus`: per node, the UUIDs of the GPUs the job's ranks use. Only those are judged: on a
    shared node, or with CUDA_VISIBLE_DEVICES, a throttled GPU of another job slows nobody here.
    A node without them (or whose UUIDs match none of its GPUs) is judged whole, as before.
    """
    t = thresholds
    findings: list[Finding] = []
    for node, inventory in sorted(inventories.items()):
        if not inventory.available:
            continue
        mine = job_indices(inventory, (job_gpus or {}).get(node))
        # The fabric is the node's: a GPU outside the job with links up still shows there is one.
        node_links_up = any(state is True for gpu in inventory.gpus for state in gpu.nvlink)
        by_design = _nvlinks_off_by_design(inventory.gpus)
        for gpu in inventory.gpus:
            if mine is not None and gpu.index not in mine:
                continue
            if gpu.error:
                findings.append(_judge_lost(node, gpu))
                continue
            for rule in _RULES:
                findings.extend(rule(node, gpu, t))
            findings.extend(_judge_nvlink(node, gpu, t, node_links_up, by_design.get(gpu.name, frozenset())))
    return findings


def job_indices(inventory: GpuInventory, uuids: Collection[str] | None) -> set[int] | None:
    """The NVML indices of the job's GPUs on a node; None when that cannot be told.

    None: no UUIDs (a CPU job, or an older peer), or none matches the node's GPUs (under MIG the
    CUDA device is an instance whose UUID NVML gives only through the instance's own handle).
    """
    wanted = {_uuid_key(u) for u in uuids or () if u}
    if not wanted:
        return None
    mine = {gpu.index for gpu in inventory.gpus if gpu.uuid and _uuid_key(gpu.uuid) in wanted}
    return mine or None


def _uuid_key(uuid: str) -> str:
    """NVML says "GPU-5b0a...", torch's str(uuid) the same without the prefix: compare the rest."""
    text = uuid.strip().lower()
    return text.removeprefix("gpu-")


def _judge_lost(node: int, gpu: GpuReading) -> Finding:
    return make_finding(
        "gpu_unhealthy",
        f"node {node} GPU {gpu.index}: NVML cannot read it ({gpu.error})",
        nodes=[node],
        evidence={**_where(gpu), "nvml_error": gpu.error},
        fix=f"Drain node {node}; look for Xid 79 (GPU fell off the bus) in its dmesg, then reset GPU "
        f"{gpu.index} (nvidia-smi -r -i {gpu.index}) or reboot; replace the GPU if it happens again.",
    )


def _judge_ecc(node: int, gpu: GpuReading, t: Thresholds) -> list[Finding]:
    volatile, aggregate = gpu.ecc_uncorrected_volatile, gpu.ecc_uncorrected_aggregate
    over_aggregate = (
        t.ecc_uncorrected_aggregate_max is not None and (aggregate or 0) > t.ecc_uncorrected_aggregate_max
    )
    if (volatile or 0) <= t.ecc_uncorrected_volatile_max and not over_aggregate:
        return []
    evidence = {
        **_where(gpu),
        "ecc_uncorrected_volatile": volatile,
        "ecc_uncorrected_aggregate": aggregate,
        "ecc_corrected_volatile": gpu.ecc_corrected_volatile,
        "limit_volatile": t.ecc_uncorrected_volatile_max,
        "limit_aggregate": t.ecc_uncorrected_aggregate_max,
    }
    return [
        make_finding(
            "gpu_ecc_errors",
            f"node {node} GPU {gpu.index}{_at(gpu)}: {volatile} uncorrectable ECC error(s) since the driver "
            f"loaded ({aggregate} in its lifetime)",
            nodes=[node],
            evidence=evidence,
            fix=f"Drain node {node}; stop the jobs on GPU {gpu.index}, reset it "
            f"(nvidia-smi -r -i {gpu.index}) so the bad memory is remapped or retired, then run "
            "dcgmi diag -r 3; replace the GPU if uncorrectable errors come back.",
        )
    ]


def _judge_retired(node: int, gpu: GpuReading, t: Thresholds) -> list[Finding]:
    retired = (gpu.retired_pages_sbe or 0) + (gpu.retired_pages_dbe or 0)
    evidence = {
        **_where(gpu),
        "retired_pages_sbe": gpu.retired_pages_sbe,
        "retired_pages_dbe": gpu.retired_pages_dbe,
        "retired_pages_pending": gpu.retired_pages_pending,
        "limit": t.retired_pages_limit,
    }
    findings = []
    if retired >= t.retired_pages_limit:
        findings.append(
            make_finding(
                "gpu_ecc_errors",
                f"node {node} GPU {gpu.index}{_at(gpu)}: {retired} retired memory pages "
                f"(limit {t.retired_pages_limit})",
                nodes=[node],
                evidence=evidence,
                fix=f"Drain node {node} and RMA GPU {gpu.index}: it has used up its page-retirement budget "
                "(confirm with dcgmi diag -r 3 and attach nvidia-bug-report.sh).",
            )
        )
    if gpu.retired_pages_pending:
        findings.append(
            make_finding(
                "gpu_unhealthy",
                f"node {node} GPU {gpu.index}{_at(gpu)}: a page retirement is pending",
                nodes=[node],
                evidence=evidence,
                fix=f"Reset GPU {gpu.index} (nvidia-smi -r -i {gpu.index}) or reboot node {node} so the bad "
                "page is taken out of use; until then jobs can land on it.",
            )
        )
    return findings


def _judge_remapped(node: int, gpu: GpuReading, t: Thresholds) -> list[Finding]:
    evidence = {
        **_where(gpu),
        "remapped_rows_correctable": gpu.remapped_rows_correctable,
        "remapped_rows_uncorrectable": gpu.remapped_rows_uncorrectable,
        "remapped_rows_pending": gpu.remapped_rows_pending,
        "remapped_rows_failure": gpu.remapped_rows_failure,
        "limit_uncorrectable": t.remapped_rows_uncorrectable_limit,
    }
    findings = []
    over = (gpu.remapped_rows_uncorrectable or 0) >= t.remapped_rows_uncorrectable_limit
    if gpu.remapped_rows_failure or over:
        why = "row remapping has failed" if gpu.remapped_rows_failure else "too many rows remapped"
        findings.append(
            make_finding(
                "gpu_ecc_errors",
                f"node {node} GPU {gpu.index}{_at(gpu)}: {why} "
                f"({gpu.remapped_rows_uncorrectable} rows for uncorrectable errors)",
                nodes=[node],
                evidence=evidence,
                fix=f"Drain node {node} and RMA GPU {gpu.index}: a bank has no spare rows left, so new "
                "memory errors can no longer be repaired (NVIDIA's row-remapping RMA policy).",
            )
        )
    if gpu.remapped_rows_pending:
        findings.append(
            make_finding(
                "gpu_unhealthy",
                f"node {node} GPU {gpu.index}{_at(gpu)}: a row remapping is pending (needs a GPU reset)",
                nodes=[node],
                evidence=evidence,
                fix=f"Reset GPU {gpu.index} (nvidia-smi -r -i {gpu.index}) or reboot node {node} when "
                "its jobs end, so the remap takes effect; if rows go pending again after the reset, RMA it.",
            )
        )
    return findings


def _judge_throttle(node: int, gpu: GpuReading, t: Thresholds) -> list[Finding]:
    judged = HW_LIMITS | SW_LIMITS if _busy(gpu, t) else HW_LIMITS
    limits = [r for r in gpu.reasons if r in judged]
    fraction = _fraction(gpu.sm_clock_mhz, gpu.sm_clock_max_mhz)
    if not limits or (fraction is not None and fraction >= t.throttle_clock_fraction):
        return []
    clock = f"{_num(gpu.sm_clock_mhz)}/{_num(gpu.sm_clock_max_mhz)} MHz" + (
        f" ({fraction:.0%})" if fraction is not None else ""
    )
    evidence = {
        **_where(gpu),
        "limits": limits,
        "reasons": list(gpu.reasons),
        "sm_clock_mhz": gpu.sm_clock_mhz,
        "sm_clock_max_mhz": gpu.sm_clock_max_mhz,
        "temperature_c": gpu.temperature_c,
        "power_w": gpu.power_w,
        "power_limit_w": gpu.power_limit_w,
        "utilization_pct": gpu.utilization_pct,
        "limit_clock_fraction": t.throttle_clock_fraction,
    }
    return [
        make_finding(
            "gpu_throttled",
            f"node {node} GPU {gpu.index}{_at(gpu)}: SM clock {clock} held down by {', '.join(limits)}",
            nodes=[node],
            evidence=evidence,
            fix=_throttle_fix(node, gpu, limits),
        )
    ]


def _throttle_fix(node: int, gpu: GpuReading, limits: Iterable[str]) -> str:
    limits = set(limits)
    steps = []
    if limits & {"sw_thermal_slowdown", "hw_thermal_slowdown"}:
        steps.append(
            f"cooling of node {node} (GPU at {gpu.temperature_c} C): fans, airflow, inlet temperature, "
            "nvidia-smi -q -d TEMPERATURE"
        )
    if "hw_power_brake_slowdown" in limits:
        steps.append(
            "the power supplies and the BMC event log: the power-brake signal comes from outside the GPU"
        )
    if "sw_power_cap" in limits:
        steps.append(
            f"the power limit ({_num(gpu.power_w)} of {_num(gpu.power_limit_w)} W, nvidia-smi -q -d POWER): "
            "raise it with nvidia-smi -pl if someone lowered it"
        )
    if limits == {"hw_slowdown"}:
        steps.append("temperature, power supplies and the BMC log: HW slowdown halves the clocks")
    return f"Check {'; '.join(steps)}. Re-read once: a single reading can catch a clock change."


def _judge_pcie(node: int, gpu: GpuReading, t: Thresholds) -> list[Finding]:
    busy = _busy(gpu, t)
    narrow = _below(gpu.pcie_width, gpu.pcie_width_max) and (busy or not t.pcie_width_needs_load)
    slow = _below(gpu.pcie_gen, gpu.pcie_gen_max) and busy
    if not (narrow or slow):
        return []
    problems = []
    if narrow:
        problems.append(f"x{gpu.pcie_width} of x{gpu.pcie_width_max}")
    if slow:
        problems.append(f"Gen{gpu.pcie_gen} of Gen{gpu.pcie_gen_max} under load")
    fix = (
        f"On node {node}, reseat GPU {gpu.index} and its riser/cable, and check the slot's bifurcation and "
        "PCIe settings in the BIOS"
        if narrow
        else f"On node {node}, check the BIOS PCIe speed setting and any riser or retimer of GPU {gpu.index}"
    )
    bus = gpu.bus_id or "<bus id>"
    return [
        make_finding(
            "gpu_pcie_degraded",
            f"node {node} GPU {gpu.index}{_at(gpu)}: PCIe link at {' and '.join(problems)}",
            nodes=[node],
            evidence={
                **_where(gpu),
                "pcie_gen": gpu.pcie_gen,
                "pcie_gen_max": gpu.pcie_gen_max,
                "pcie_width": gpu.pcie_width,
                "pcie_width_max": gpu.pcie_width_max,
                "utilization_pct": gpu.utilization_pct,
                "generation_judged": busy,
            },
            fix=f"{fix}; lspci -vv -s {bus} shows LnkCap against LnkSta, and dmesg shows AER errors.",
        )
    ]


def _nvlinks_off_by_design(gpus: Iterable[GpuReading]) -> dict[str | None, frozenset[int]]:
    """Per model, the links inactive on every GPU of that model on the node that reports NVLink.

    H800 and A800 boards ship with links fused off, and bridged PCIe cards use only some of theirs:
    the same link numbers are down on every such GPU, by design. A fault is one GPU's own. With
    fewer than two GPUs of a model to compare, nothing is known to be off by design.
    """
    down: dict[str | None, list[set[int]]] = {}
    for gpu in gpus:
        if not gpu.error and any(state is not None for state in gpu.nvlink):
            down.setdefault(gpu.name, []).append({n for n, state in enumerate(gpu.nvlink) if state is False})
    return {name: frozenset(set.intersection(*sets)) for name, sets in down.items() if len(sets) >= 2}


def _judge_nvlink(
    node: int, gpu: GpuReading, t: Thresholds, node_links_up: bool, by_design: frozenset[int] = frozenset()
) -> list[Finding]:
    down = [link for link, state in enumerate(gpu.nvlink) if state is False and link not in by_design]
    if len(down) <= t.nvlink_inactive_max or not node_links_up:
        return []  # all links down on every GPU: no NVLink fabric here (or not judged)
    up = sum(state is True for state in gpu.nvlink)
    designed = f"; {len(by_design)} more off on every {gpu.name} here, by design" if by_design else ""
    return [
        make_finding(
            "gpu_unhealthy",
            f"node {node} GPU {gpu.index}{_at(gpu)}: NVLink {', '.join(map(str, down))} inactive "
            f"({up} of {up + len(down)} links up{designed})",
            nodes=[node],
            evidence={
                **_where(gpu),
                "nvlink_inactive": down,
                "nvlink_active": up,
                "nvlink_off_by_design": sorted(by_design),
                "limit": t.nvlink_inactive_max,
            },
            fix=f"Run nvidia-smi nvlink --status -i {gpu.index} on node {node}; on NVSwitch systems check "
            "that nvidia-fabricmanager runs; reset the GPU or reboot, and replace the GPU or baseboard if "
            "the links stay down.",
        )
    ]


_RULES: tuple[Callable[[int, GpuReading, Thresholds], list[Finding]], ...] = (
    _judge_ecc,
    _judge_retired,
    _judge_remapped,
    _judge_throttle,
    _judge_pcie,
)


def _busy(gpu: GpuReading, t: Thresholds) -> bool:
    """Under load: a kernel ran most of NVML's sample period and the idle reason is off."""
    util = gpu.utilization_pct
    return util is not None and util >= t.busy_utilization_pct and "gpu_idle" not in gpu.reasons


def _below(current: int | None, maximum: int | None) -> bool:
    return current is not None and maximum is not None and current < maximum


def _fraction(current: int | None, maximum: int | None) -> float | None:
    return current / maximum if current is not None and maximum else None


def _where(gpu: GpuReading) -> dict[str, Any]:
    return {"gpu": gpu.index, "uuid": gpu.uuid, "bus_id": gpu.bus_id, "name": gpu.name}


def _at(gpu: GpuReading) -> str:
    return f" ({gpu.bus_id})" if gpu.bus_id else ""


# --- health table ---------------------------------------------------------------------------------


def health_rows(
    inventories: Mapping[int, GpuInventory], job_gpus: Mapping[int, Collection[str]] | None = None
) -> list[dict[str, Any]]:
    """One row per (node, GPU) for the per-node health table; one row per node without NVML.

    With `job_gpus` (as judge_gpus takes it), each row's `job` says whether the job uses that GPU
    (False: shown, not judged); a node where that cannot be told has no `job` in its rows.
    """
    rows: list[dict[str, Any]] = []
    for node, inventory in sorted(inventories.items()):
        if not inventory.available:
            rows.append({"node": node, "gpu": None, "name": inventory.error or "NVML not available"})
            continue
        mine = job_indices(inventory, (job_gpus or {}).get(node))
        for gpu in inventory.gpus:
            row = _row(node, gpu)
            if mine is not None:
                row["job"] = gpu.index in mine
            if gpu.compute_mode not in (None, 0):  # only a mode other than DEFAULT is worth a column
                row["compute_mode"] = COMPUTE_MODES.get(gpu.compute_mode, str(gpu.compute_mode))
            rows.append(row)
    return rows


def _row(node: int, gpu: GpuReading) -> dict[str, Any]:
    links = [state for state in gpu.nvlink if state is not None]
    remapped = _sum(gpu.remapped_rows_correctable, gpu.remapped_rows_uncorrectable)
    return {
        "node": node,
        "gpu": gpu.index,
        "name": gpu.name if not gpu.error else f"{gpu.name or ''} ({gpu.error})".strip(),
        "temp_c": gpu.temperature_c,
        "power_w": _pair(gpu.power_w, gpu.power_limit_w),
        "sm_clock_mhz": _pair(gpu.sm_clock_mhz, gpu.sm_clock_max_mhz),
        "throttle": None if gpu.clock_reasons is None else ", ".join(gpu.reasons) or "none",
        "ecc_uncorrected": gpu.ecc_uncorrected_volatile,
        "remapped_rows": f"{remapped} (pending)" if gpu.remapped_rows_pending else remapped,
        "pcie": _link(gpu),
        "nvlink": f"{sum(links)}/{len(links)}" if links else None,
    }


def _pair(value: float | None, limit: float | None) -> str | None:
    if value is None and limit is None:
        return None
    return f"{_num(value)}/{_num(limit)}"


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def _sum(*values: int | None) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _link(gpu: GpuReading) -> str | None:
    if gpu.pcie_gen is None and gpu.pcie_width is None:
        return None
    now = f"Gen{_num(gpu.pcie_gen)} x{_num(gpu.pcie_width)}"
    return f"{now} / Gen{_num(gpu.pcie_gen_max)} x{_num(gpu.pcie_width_max)}"


# -- how many GPUs a CUDA process here sees (preflight, the consistency phase) -----------------
@dataclass(frozen=True)
class Gpus:
    physical: int  # NVML's count; 0 without a driver
    visible: int  # what CUDA_VISIBLE_DEVICES leaves of them
    names: tuple[str, ...] = ()
    cuda_visible_devices: str | None = None
    error: str | None = None  # why NVML could not count, or which GPUs it could not read
    driver_version: str | None = None


def count_visible(physical: int, cuda_visible_devices: str | None) -> int:
    """How many of `physical` GPUs a CUDA process sees under CUDA_VISIBLE_DEVICES.

    CUDA reads the list up to its first invalid entry (a negative or out-of-range index,
    anything that is neither an index nor a GPU-/MIG- UUID): "0,1,-1,2" leaves 2, "" or
    "-1" none. Unset: all of them.
    """
    if cuda_visible_devices is None:
        return physical
    valid: list[str] = []
    for entry in (e.strip() for e in cuda_visible_devices.split(",")):
        if not (entry.startswith(("GPU-", "MIG-")) or (entry.isdigit() and int(entry) < physical)):
            break
        valid.append(entry)
    return min(len(set(valid)), physical)


def count_gpus() -> Gpus:
    """NVML's GPUs (no CUDA context, fast), restricted by CUDA_VISIBLE_DEVICES.

    Read one GPU at a time (nccldoctor.gpuhealth): a GPU NVML cannot open or has lost is not
    counted, and is named in `error`; the others still are.
    """
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    inventory = read_gpus()
    if not inventory.available:
        return Gpus(0, 0, cuda_visible_devices=cvd, error=inventory.error)
    usable = [g for g in inventory.gpus if not g.error]
    lost = "; ".join(f"GPU {g.index}: {g.error}" for g in inventory.gpus if g.error)
    names = tuple(g.name for g in usable if g.name)
    visible = count_visible(len(usable), cvd)
    return Gpus(len(usable), visible, names, cvd, lost or None, inventory.driver_version)
