"""GPU health: NVML readings (through a fake pynvml), the decisions on them, the health table.

The fixtures in tests/fixtures/nvml/ are transcribed from public `nvidia-smi -q` dumps and write-ups
(each file's "source" says where, its "notes" how the fields were mapped); they were not recorded
here, since no GPU is available to these tests. NVML's per-link NVLink states are not part of
`nvidia-smi -q`, so the NVLink cases set them on a fixture reading explicitly.
"""

import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers.fake_nvml import (
    DRIVER_NOT_LOADED,
    FUNCTION_NOT_FOUND,
    GPU_IS_LOST,
    INVALID_ARGUMENT,
    NO_PERMISSION,
    NOT_SUPPORTED,
    UNKNOWN,
    NVMLError,
    fake_nvml,
)

from nccldoctor.findings import Severity
from nccldoctor.gpuhealth import (
    GpuInventory,
    GpuReading,
    Thresholds,
    health_rows,
    judge_gpus,
    read_gpus,
    watch_gpus,
)

FIXTURES = Path(__file__).parent / "fixtures" / "nvml"


def h100_spec(**overrides) -> dict:
    """An H100 as NVML answers for it (values of the h100_healthy_idle fixture's GPU 0)."""
    spec = {
        "nvmlDeviceGetName": b"NVIDIA H100 80GB HBM3",  # bytes, as older pynvml returns
        "nvmlDeviceGetUUID": "GPU-566e6f65-c38e-b12f-4824-6944218668b9",
        "nvmlDeviceGetPciInfo": SimpleNamespace(busId=b"00000000:53:00.0"),
        "nvmlDeviceGetClockInfo": {1: 345, 2: 2619},
        "nvmlDeviceGetMaxClockInfo": {1: 1980, 2: 2619},
        "nvmlDeviceGetCurrentClocksEventReasons": 0x1,
        "nvmlDeviceGetCurrentClocksThrottleReasons": 0x1,
        "nvmlDeviceGetUtilizationRates": SimpleNamespace(gpu=0, memory=0),
        "nvmlDeviceGetTemperature": {0: 36},
        "nvmlDeviceGetPowerUsage": 71970,
        "nvmlDeviceGetEnforcedPowerLimit": 700000,
        "nvmlDeviceGetTotalEccErrors": {(0, 0): 0, (1, 0): 0, (0, 1): 0, (1, 1): 0},
        "nvmlDeviceGetRemappedRows": (0, 0, 0, 0),
        "nvmlDeviceGetCurrPcieLinkGeneration": 5,
        "nvmlDeviceGetMaxPcieLinkGeneration": 5,
        "nvmlDeviceGetCurrPcieLinkWidth": 16,
        "nvmlDeviceGetMaxPcieLinkWidth": 16,
        # an H100 SXM has 18 links; any other link number answers NotSupported
        "nvmlDeviceGetNvLinkState": dict.fromkeys(range(18), 1),
    }
    return {**spec, **overrides}


def load(name: str) -> GpuInventory:
    return GpuInventory.from_json(json.loads((FIXTURES / name).read_text()))


def codes(findings) -> list[tuple[str, list[int], int]]:
    return [(f.code, f.nodes, f.evidence["gpu"]) for f in findings]


def with_gpu(inventory: GpuInventory, index: int, **changes) -> GpuInventory:
    gpus = tuple(replace(g, **changes) if g.index == index else g for g in inventory.gpus)
    return replace(inventory, gpus=gpus)


# --- reading through NVML ---------------------------------------------------------------------


def test_reads_every_field_of_an_h100_and_shuts_nvml_down():
    nvml = fake_nvml([h100_spec()])
    inventory = read_gpus(nvml)
    assert inventory.available and inventory.driver_version == "535.183.01"
    assert inventory.gpus[0] == GpuReading(
        index=0,
        name="NVIDIA H100 80GB HBM3",
        uuid="GPU-566e6f65-c38e-b12f-4824-6944218668b9",
        bus_id="00000000:53:00.0",
        sm_clock_mhz=345,
        sm_clock_max_mhz=1980,
        mem_clock_mhz=2619,
        mem_clock_max_mhz=2619,
        clock_reasons=0x1,
        utilization_pct=0,
        temperature_c=36,
        power_w=71.97,
        power_limit_w=700.0,
        ecc_corrected_volatile=0,
        ecc_uncorrected_volatile=0,
        ecc_corrected_aggregate=0,
        ecc_uncorrected_aggregate=0,
        remapped_rows_correctable=0,
        remapped_rows_uncorrectable=0,
        remapped_rows_pending=False,
        remapped_rows_failure=False,
        pcie_gen=5,
        pcie_gen_max=5,
        pcie_width=16,
        pcie_width_max=16,
        nvlink=(True,) * 18,
    )
    assert inventory.gpus[0].reasons == ("gpu_idle",)
    assert nvml.calls == {"init": 1, "shutdown": 1}


def test_what_a_consumer_gpu_does_not_support_reads_none_without_errors():
    spec = h100_spec()
    for name in (
        "nvmlDeviceGetTotalEccErrors",
        "nvmlDeviceGetRemappedRows",
        "nvmlDeviceGetNvLinkState",
        "nvmlDeviceGetEnforcedPowerLimit",
    ):
        del spec[name]
    gpu = read_gpus(fake_nvml([spec])).gpus[0]
    assert gpu.ecc_uncorrected_volatile is None and gpu.ecc_corrected_aggregate is None
    assert gpu.retired_pages_sbe is None and gpu.retired_pages_pending is None
    assert gpu.remapped_rows_pending is None and gpu.power_limit_w is None
    assert gpu.nvlink == () and gpu.errors == {} and gpu.error == ""
    assert gpu.sm_clock_mhz == 345  # the rest is still read


def test_retired_pages_and_pending_status_are_counted():
    spec = h100_spec(
        nvmlDeviceGetRetiredPages={0: [0x1000, 0x2000], 1: []}, nvmlDeviceGetRetiredPagesPendingStatus=1
    )
    gpu = read_gpus(fake_nvml([spec])).gpus[0]
    assert (gpu.retired_pages_sbe, gpu.retired_pages_dbe, gpu.retired_pages_pending) == (2, 0, True)


def test_older_binding_without_clocks_event_reasons_falls_back_to_throttle_reasons():
    spec = h100_spec(nvmlDeviceGetCurrentClocksThrottleReasons=0x88)
    nvml = fake_nvml([spec], drop=("nvmlDeviceGetCurrentClocksEventReasons",))
    assert read_gpus(nvml).gpus[0].reasons == ("hw_slowdown", "hw_power_brake_slowdown")


def test_older_driver_without_the_event_reasons_symbol_falls_back_too():
    spec = h100_spec(
        nvmlDeviceGetCurrentClocksEventReasons=NVMLError(FUNCTION_NOT_FOUND),
        nvmlDeviceGetCurrentClocksThrottleReasons=0x20,
    )
    gpu = read_gpus(fake_nvml([spec])).gpus[0]
    assert gpu.reasons == ("sw_thermal_slowdown",) and gpu.errors == {}


def test_a_failing_call_is_noted_and_the_rest_still_read():
    spec = h100_spec(nvmlDeviceGetTemperature=NVMLError(NO_PERMISSION))
    gpu = read_gpus(fake_nvml([spec])).gpus[0]
    assert gpu.temperature_c is None and gpu.errors == {"temperature_c": "Insufficient Permissions"}
    assert gpu.error == "" and gpu.power_w == 71.97


def test_a_lost_gpu_is_reported_unhealthy_and_its_neighbour_still_read():
    nvml = fake_nvml([h100_spec(), {"lost": True}])
    inventory = read_gpus(nvml)
    assert inventory.gpus[0].name == "NVIDIA H100 80GB HBM3"
    assert inventory.gpus[1].error == "no NVML handle: GPU is lost"
    [finding] = judge_gpus({2: inventory})
    assert (finding.code, finding.nodes, finding.evidence["gpu"]) == ("gpu_unhealthy", [2], 1)
    assert nvml.calls["shutdown"] == 1


def test_gpu_lost_during_a_call_marks_the_whole_gpu():
    spec = h100_spec(nvmlDeviceGetPowerUsage=NVMLError(GPU_IS_LOST))
    gpu = read_gpus(fake_nvml([spec])).gpus[0]
    assert gpu.error == "power_w: GPU is lost"
    assert codes(judge_gpus({0: GpuInventory(True, gpus=(gpu,))})) == [("gpu_unhealthy", [0], 0)]


def test_no_driver_means_not_available_no_crash_no_finding():
    nvml = fake_nvml([], init_error=DRIVER_NOT_LOADED)
    inventory = read_gpus(nvml)
    assert inventory == GpuInventory(available=False, error="NVML not available: Driver Not Loaded")
    assert nvml.calls == {"init": 1, "shutdown": 0}  # nothing to shut down after a failed init
    assert judge_gpus({0: inventory}) == []
    assert health_rows({0: inventory}) == [
        {"node": 0, "gpu": None, "name": "NVML not available: Driver Not Loaded"}
    ]


def test_count_failing_after_init_still_shuts_down():
    nvml = fake_nvml([])
    nvml.nvmlDeviceGetCount = lambda: (_ for _ in ()).throw(NVMLError(NO_PERMISSION))
    inventory = read_gpus(nvml)
    assert not inventory.available and "Insufficient Permissions" in inventory.error
    assert nvml.calls["shutdown"] == 1


def test_real_pynvml_on_this_machine_returns_quickly():
    pytest.importorskip("pynvml")
    if Path("/proc/driver/nvidia/version").exists():
        pytest.skip("an NVIDIA driver is loaded here; this checks the no-driver path")
    start = time.monotonic()
    inventory = read_gpus()
    assert time.monotonic() - start < 5
    assert not inventory.available and inventory.error.startswith("NVML not available")
    assert judge_gpus({0: inventory}) == []


def test_readings_survive_a_trip_through_json():
    read = read_gpus(fake_nvml([h100_spec(nvmlDeviceGetTemperature=NVMLError(NO_PERMISSION))]))
    for inventory in (read, *(load(p.name) for p in sorted(FIXTURES.glob("*.json")))):
        assert GpuInventory.from_json(json.loads(json.dumps(inventory.to_json()))) == inventory


def test_every_fixture_says_where_it_comes_from():
    for path in FIXTURES.glob("*.json"):
        data = json.loads(path.read_text())
        assert data["source"].startswith("https://github.com/"), path.name


# --- decisions --------------------------------------------------------------------------------


def test_healthy_h100_node_gives_no_finding():
    # GPU 2 has SW power cap, SW thermal and HW power-brake bits set at 1980 of 1980 MHz:
    # a reason without lost clocks is not a throttle.
    inventory = load("h100_healthy_idle.json")
    assert inventory.gpus[2].reasons == ("sw_power_cap", "sw_thermal_slowdown", "hw_power_brake_slowdown")
    assert judge_gpus({0: inventory, 1: inventory}) == []


def test_hardware_power_brake_at_idle_is_throttling():
    [finding] = judge_gpus({3: load("h100_hw_power_brake.json")})
    assert (finding.code, finding.severity, finding.nodes) == ("gpu_throttled", Severity.WARN, [3])
    assert finding.evidence["gpu"] == 0 and finding.evidence["bus_id"] == "00000000:19:00.0"
    assert finding.evidence["limits"] == ["hw_slowdown", "hw_power_brake_slowdown"]
    assert "GPU 0" in finding.message and "86/1980 MHz (4%)" in finding.message
    assert "power supplies" in finding.fix


def test_thermal_throttle_under_load_names_gpu_and_reason():
    [finding] = judge_gpus({1: load("laptop_sw_thermal_under_load.json")})
    assert (finding.code, finding.nodes, finding.evidence["gpu"]) == ("gpu_throttled", [1], 0)
    assert finding.evidence["limits"] == ["sw_power_cap", "sw_thermal_slowdown"]
    assert "node 1 GPU 0" in finding.message and "sw_thermal_slowdown" in finding.message
    assert "cooling of node 1 (GPU at 71 C)" in finding.fix


def test_software_clock_limits_are_not_judged_on_an_idle_gpu():
    idle = with_gpu(load("laptop_sw_thermal_under_load.json"), 0, utilization_pct=0)
    assert judge_gpus({1: idle}) == []


def test_hardware_thermal_slowdown_with_unknown_clock_is_still_reported():
    inventory = with_gpu(load("h100_healthy_idle.json"), 1, clock_reasons=0x48, sm_clock_mhz=None)
    [finding] = judge_gpus({0: inventory})
    assert codes([finding]) == [("gpu_throttled", [0], 1)]
    assert finding.evidence["limits"] == ["hw_slowdown", "hw_thermal_slowdown"]
    assert "SM clock ?/1980 MHz" in finding.message  # unknown, not Python's None


def test_x8_link_is_degraded_even_at_idle_but_the_idle_gen1_is_not():
    # idle RTX 2080: Gen1 of Gen3 (idle downshift) at x8 of x16, SW power cap set at 300 MHz
    [finding] = judge_gpus({5: load("rtx2080_pcie_x8_idle.json")})
    assert (finding.code, finding.severity, finding.nodes) == ("gpu_pcie_degraded", Severity.WARN, [5])
    assert finding.evidence["gpu"] == 1 and finding.evidence["bus_id"] == "00000000:02:00.0"
    assert (finding.evidence["pcie_width"], finding.evidence["pcie_width_max"]) == (8, 16)
    assert "x8 of x16" in finding.message and "Gen1" not in finding.message
    assert "reseat GPU 1" in finding.fix and "lspci -vv -s 00000000:02:00.0" in finding.fix


def test_a_low_generation_under_load_is_degraded():
    busy = with_gpu(load("rtx2080_pcie_x8_idle.json"), 1, utilization_pct=100, clock_reasons=0, pcie_width=16)
    [finding] = judge_gpus({0: busy})
    assert codes([finding]) == [("gpu_pcie_degraded", [0], 1)]
    assert "Gen1 of Gen3 under load" in finding.message


def test_width_can_be_left_to_load_too():
    assert judge_gpus({5: load("rtx2080_pcie_x8_idle.json")}, Thresholds(pcie_width_needs_load=True)) == []


def test_uncorrectable_ecc_error_fails():
    [finding] = judge_gpus({4: load("sram_uncorrectable_ecc.json")})
    assert (finding.code, finding.severity, finding.nodes) == ("gpu_ecc_errors", Severity.FAIL, [4])
    assert finding.evidence["gpu"] == 0
    assert (finding.evidence["ecc_uncorrected_volatile"], finding.evidence["ecc_uncorrected_aggregate"]) == (
        1,
        5,
    )
    assert "nvidia-smi -r -i 0" in finding.fix


def test_ecc_limits_come_from_thresholds():
    inventory = load("sram_uncorrectable_ecc.json")
    assert judge_gpus({4: inventory}, Thresholds(ecc_uncorrected_volatile_max=1)) == []
    lifetime = Thresholds(ecc_uncorrected_volatile_max=1, ecc_uncorrected_aggregate_max=4)
    assert codes(judge_gpus({4: inventory}, lifetime)) == [("gpu_ecc_errors", [4], 0)]


def test_pending_row_remap_is_unhealthy_and_corrected_errors_are_not_judged():
    [finding] = judge_gpus({2: load("a100_remap_pending.json")})
    assert (finding.code, finding.severity, finding.nodes) == ("gpu_unhealthy", Severity.FAIL, [2])
    assert finding.evidence["gpu"] == 0 and finding.evidence["bus_id"] == "00000000:10:1C.0"
    assert finding.evidence["remapped_rows_pending"] is True
    assert "pending" in finding.message and "nvidia-smi -r -i 0" in finding.fix


def test_failed_row_remapping_means_rma():
    failed = with_gpu(
        load("a100_remap_pending.json"), 0, remapped_rows_pending=False, remapped_rows_failure=True
    )
    [finding] = judge_gpus({2: failed})
    assert codes([finding]) == [("gpu_ecc_errors", [2], 0)] and "RMA GPU 0" in finding.fix


def test_pending_page_retirement_is_unhealthy_and_the_page_limit_is_ecc():
    inventory = load("retired_pages_pending.json")
    assert codes(judge_gpus({0: inventory})) == [("gpu_unhealthy", [0], 0)]
    worn = with_gpu(inventory, 0, retired_pages_dbe=58, retired_pages_pending=False)
    assert codes(judge_gpus({0: worn})) == [("gpu_ecc_errors", [0], 0)]  # 2 SBE + 58 DBE: DCGM's 60


def test_one_inactive_nvlink_among_active_ones_is_unhealthy():
    links = (True,) * 3 + (False,) + (True,) * 14
    [finding] = judge_gpus({6: with_gpu(load("h100_healthy_idle.json"), 2, nvlink=links)})
    assert codes([finding]) == [("gpu_unhealthy", [6], 2)]
    assert finding.evidence["nvlink_inactive"] == [3] and "NVLink 3 inactive (17 of 18" in finding.message


def test_a_gpu_with_all_links_down_beside_gpus_with_links_up_is_unhealthy():
    inventory = load("h100_healthy_idle.json")
    inventory = with_gpu(with_gpu(inventory, 0, nvlink=(True,) * 18), 1, nvlink=(False,) * 18)
    assert codes(judge_gpus({0: inventory})) == [("gpu_unhealthy", [0], 1)]


def test_no_nvlink_anywhere_is_not_judged():
    inventory = with_gpu(load("h100_healthy_idle.json"), 0, nvlink=(False,) * 18)  # no fabric on this node
    assert judge_gpus({0: inventory}) == []


def test_findings_carry_only_their_own_node():
    inventories = {0: load("h100_healthy_idle.json"), 1: load("sram_uncorrectable_ecc.json")}
    assert codes(judge_gpus(inventories)) == [("gpu_ecc_errors", [1], 0)]


def test_thresholds_reject_values_out_of_range():
    with pytest.raises(ValueError, match=r"throttle_clock_fraction=1.5: must be in \(0, 1\]"):
        Thresholds(throttle_clock_fraction=1.5)
    with pytest.raises(ValueError, match="retired_pages_limit=-1: must be >= 0"):
        Thresholds(retired_pages_limit=-1)


# --- health table -----------------------------------------------------------------------------


def test_health_rows_one_per_node_and_gpu():
    inventory = with_gpu(load("h100_healthy_idle.json"), 0, nvlink=(True,) * 17 + (False,))
    rows = health_rows({1: inventory, 0: GpuInventory(available=False, error="NVML not available: x")})
    assert [(r["node"], r["gpu"]) for r in rows] == [(0, None), (1, 0), (1, 1), (1, 2)]
    assert rows[1] == {
        "node": 1,
        "gpu": 0,
        "name": "NVIDIA H100 80GB HBM3",
        "temp_c": 36,
        "power_w": "71.97/700",
        "sm_clock_mhz": "345/1980",
        "throttle": "gpu_idle",
        "ecc_uncorrected": 0,
        "remapped_rows": 0,
        "pcie": "Gen5 x16 / Gen5 x16",
        "nvlink": "17/18",
    }
    assert rows[3]["throttle"] == "sw_power_cap, sw_thermal_slowdown, hw_power_brake_slowdown"


def test_health_rows_show_unknowns_and_pending_remaps():
    [row] = health_rows({2: load("a100_remap_pending.json")})
    assert row["remapped_rows"] == "1 (pending)" and row["power_w"] is None and row["pcie"] is None
    [laptop] = health_rows({0: load("laptop_sw_thermal_under_load.json")})
    assert laptop["power_w"] == "9/?" and laptop["nvlink"] is None


# --- reading while the GPUs work (watch_gpus) ---------------------------------------------------


def test_watch_keeps_each_gpus_busiest_reading_and_reads_counters_once():
    loads = iter([0, 40, 100, 70] + [0] * 1000)
    stop = threading.Event()
    ecc_calls = []

    def util(handle):
        value = next(loads)
        if value == 70:
            stop.set()
        return SimpleNamespace(gpu=value, memory=0)

    def ecc(handle, kind, counter):
        ecc_calls.append((kind, counter))
        return 0

    spec = h100_spec(nvmlDeviceGetUtilizationRates=util, nvmlDeviceGetTotalEccErrors=ecc)
    nvml = fake_nvml([spec])
    gpu = watch_gpus(stop, nvml, interval_s=0.001).gpus[0]
    assert gpu.utilization_pct == 100
    assert len(ecc_calls) == 4  # the four counters, once
    assert nvml.calls == {"init": 1, "shutdown": 1}


def test_watch_stopped_at_once_still_reads_every_gpu():
    stop = threading.Event()
    stop.set()
    inventory = watch_gpus(stop, fake_nvml([h100_spec(), h100_spec()]))
    assert [g.index for g in inventory.gpus] == [0, 1] and inventory.gpus[0].nvlink == (True,) * 18


def test_a_gpu_lost_during_the_watch_is_kept_lost():
    state = {"reads": 0}
    stop = threading.Event()

    def temperature(handle, sensor):
        state["reads"] += 1
        if state["reads"] >= 2:  # the first watch reading after the full one
            stop.set()
            raise NVMLError(GPU_IS_LOST)
        return 36

    inventory = watch_gpus(
        stop, fake_nvml([h100_spec(nvmlDeviceGetTemperature=temperature)]), interval_s=0.001
    )
    assert "GPU is lost" in inventory.gpus[0].error
    assert codes(judge_gpus({0: inventory})) == [("gpu_unhealthy", [0], 0)]


def test_watch_without_a_driver_says_why():
    inventory = watch_gpus(threading.Event(), fake_nvml([], init_error=DRIVER_NOT_LOADED))
    assert not inventory.available and "Driver Not Loaded" in inventory.error


# --- the job's GPUs only ------------------------------------------------------------------------


def four_gpus(throttled: int) -> GpuInventory:
    """A node of 4 H100s under load, GPU `throttled` held down by a software power cap."""

    def spec(i: int) -> dict:
        hot = {"nvmlDeviceGetCurrentClocksEventReasons": 0x4, "nvmlDeviceGetClockInfo": {1: 1200, 2: 2619}}
        busy = {
            "nvmlDeviceGetUUID": f"GPU-0000000{i}-c38e-b12f-4824-6944218668b9",
            "nvmlDeviceGetUtilizationRates": SimpleNamespace(gpu=100, memory=50),
            "nvmlDeviceGetCurrentClocksEventReasons": 0,
            "nvmlDeviceGetClockInfo": {1: 1980, 2: 2619},
        }
        return h100_spec(**{**busy, **(hot if i == throttled else {})})

    return read_gpus(fake_nvml([spec(i) for i in range(4)]))


# The job runs on GPUs 0 and 1 (CUDA_VISIBLE_DEVICES=0,1); torch names them without "GPU-".
JOB_ON_0_1 = {3: {"GPU-00000000-c38e-b12f-4824-6944218668b9", "00000001-C38E-B12F-4824-6944218668B9"}}


def test_a_throttled_gpu_outside_the_job_is_shown_not_judged():
    inventory = four_gpus(throttled=3)
    assert judge_gpus({3: inventory}, job_gpus=JOB_ON_0_1) == []
    assert codes(judge_gpus({3: inventory})) == [("gpu_throttled", [3], 3)]  # without: every GPU
    rows = health_rows({3: inventory}, JOB_ON_0_1)
    assert [r["job"] for r in rows] == [True, True, False, False]


def test_a_throttled_gpu_of_the_job_is_judged():
    assert codes(judge_gpus({3: four_gpus(throttled=1)}, job_gpus=JOB_ON_0_1)) == [("gpu_throttled", [3], 1)]


def test_uuids_that_match_no_gpu_judge_the_node_whole():
    mig = {3: {"MIG-4b2c9e51-1d4f-5a7e-9a64-3f6f0c1f2a11"}}  # a MIG instance: not an NVML GPU UUID
    inventory = four_gpus(throttled=3)
    assert codes(judge_gpus({3: inventory}, job_gpus=mig)) == [("gpu_throttled", [3], 3)]
    assert "job" not in health_rows({3: inventory}, mig)[0]
    assert codes(judge_gpus({3: inventory}, job_gpus={0: JOB_ON_0_1[3]})) == [("gpu_throttled", [3], 3)]


# --- NVLink: the real link count, and links off by design ------------------------------------------


def nvlink_answers(states: dict[int, int], last: int) -> dict:
    """Per link number: 1 active, 0 inactive; NVML's InvalidArgument past link `last`."""
    return {**{n: NVMLError(INVALID_ARGUMENT) for n in range(last + 1, 64)}, **states}


@pytest.mark.parametrize("binding_max", [18, 36])
def test_all_36_links_of_a_newer_gpu_are_read_whatever_the_bindings_constant(binding_max):
    spec = h100_spec(nvmlDeviceGetNvLinkState=nvlink_answers(dict.fromkeys(range(36), 1), last=35))
    gpu = read_gpus(fake_nvml([spec], max_links=binding_max)).gpus[0]
    assert gpu.nvlink == (True,) * 36


def test_links_past_the_last_one_are_not_asked_about():
    asked = []

    def state(handle, link):
        asked.append(link)
        if link >= 18:
            raise NVMLError(INVALID_ARGUMENT)
        return 1

    gpu = read_gpus(fake_nvml([h100_spec(nvmlDeviceGetNvLinkState=state)])).gpus[0]
    assert gpu.nvlink == (True,) * 18 and asked == list(range(19))


def test_a_fused_off_link_answering_not_supported_is_unknown_not_down():
    answers = nvlink_answers({**dict.fromkeys(range(18), 1), 4: NVMLError(NOT_SUPPORTED)}, last=17)
    nvml = fake_nvml([h100_spec(nvmlDeviceGetNvLinkState=answers)] * 2)
    inventory = read_gpus(nvml)
    assert inventory.gpus[0].nvlink[4] is None and inventory.gpus[0].nvlink[5] is True
    assert judge_gpus({0: inventory}) == []


def h800(down: tuple[int, ...] = ()) -> dict:
    """An H800: 8 of its 18 links enabled, links 8-17 inactive by design."""
    states = {n: 0 if n >= 8 or n in down else 1 for n in range(18)}
    return h100_spec(nvmlDeviceGetName="NVIDIA H800", nvmlDeviceGetNvLinkState=nvlink_answers(states, 17))


def test_links_off_by_design_on_every_h800_are_not_unhealthy():
    assert judge_gpus({0: read_gpus(fake_nvml([h800()] * 8))}) == []


def test_an_h800_with_one_more_link_down_is_unhealthy_for_that_link_only():
    [finding] = judge_gpus({0: read_gpus(fake_nvml([h800()] * 5 + [h800(down=(2,))] + [h800()] * 2))})
    assert codes([finding]) == [("gpu_unhealthy", [0], 5)]
    assert finding.evidence["nvlink_inactive"] == [2]
    assert finding.evidence["nvlink_off_by_design"] == list(range(8, 18))
    assert (
        "NVLink 2 inactive (7 of 8 links up; 10 more off on every NVIDIA H800 here, by design)"
        in finding.message
    )


def test_a_failing_handle_is_judged_and_its_neighbours_read():
    nvml = fake_nvml([h100_spec(), {"handle_error": UNKNOWN}, h100_spec()])
    inventory = read_gpus(nvml)
    assert inventory.gpus[1].error == "no NVML handle: Unknown Error"
    assert inventory.gpus[2].nvlink == (True,) * 18
    assert codes(judge_gpus({0: inventory})) == [("gpu_unhealthy", [0], 1)]
    assert watch_gpus(threading.Event(), nvml, max_s=0).gpus[1].error == "no NVML handle: Unknown Error"
