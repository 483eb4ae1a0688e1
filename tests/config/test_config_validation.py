"""Config loading (MODEL.md section 5): presets resolve, and every invalid input names file, key and allowed values."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from memmodel.config import load_config, parse_config, preset_names
from memmodel.config.model import GIB
from memmodel.errors import ConfigError

VM_PRESETS = ["baseline-4k", "baseline-thp", "baseline-thp-aged", "baseline-thp-fpr", "hugetlb-1g",
               "memctl-2m", "memctl-4k", "native-4k", "native-thp"]
CPU_PRESETS = ["icelake", "sapphire-rapids", "skylake", "zen2", "zen3", "zen4", "zen5"]


def write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_presets_are_exactly_the_named_ones() -> None:
    assert preset_names("vm") == VM_PRESETS
    assert preset_names("cpu") == CPU_PRESETS


def test_memctl_presets_pass_unmaps_through_and_name_their_fair_baseline() -> None:
    for memctl, baseline in (("memctl-2m", "baseline-thp"), ("memctl-4k", "baseline-4k")):
        c = load_config(memctl)
        assert c.guest.unmap == "passthrough" and c.baseline == baseline
        b = load_config(baseline)
        assert b.host.page_shift == c.host.page_shift and b.guest.unmap == "free"
    fpr = load_config("baseline-thp-fpr")
    assert fpr.balloon.reporting and fpr.balloon.order == 9
    aged = load_config("baseline-thp-aged")
    assert aged.guest.placement == "random" and aged.guest.fragmentation > 0 and aged.host.placement == "lowest"


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[guest]\nplacement = "highest"', "guest.placement"),
        ('[host]\nplacement = 1', "host.placement"),
        ('[guest]\nunmap = "discard"', "guest.unmap"),
        ('[host]\nunmap = "free"', "host.unmap"),
        ('virtualized = false\n[guest]\nunmap = "passthrough"', "guest.unmap"),
        ('virtualized = false\n[balloon]\nreporting = true', "balloon.reporting"),
        ("[balloon]\ninterval = 0", "balloon.interval"),
        ("[balloon]\ninterval = 1.5", "balloon.interval"),
        ("[balloon]\norder = 19", "balloon.order"),
        ("[balloon]\nperiod = 3", "balloon.period"),
    ],
)
def test_v2_keys_reject_what_section_5_forbids_naming_file_and_key(tmp_path: Path, toml: str, key: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(toml + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert str(f) in str(err.value) and key in str(err.value)


@pytest.mark.parametrize("name", VM_PRESETS)
@pytest.mark.parametrize("cpu", [None, *CPU_PRESETS])
def test_every_vm_preset_resolves_with_every_cpu(name: str, cpu: str | None) -> None:
    c = load_config(name, cpu=cpu)
    assert c.name == name
    assert c.tlb_l1, "every CPU preset has an L1 TLB"
    if cpu:
        assert c.cpu == cpu


def test_vm_presets_model_the_scenarios_they_name() -> None:
    g = {n: load_config(n) for n in VM_PRESETS}
    assert not g["native-4k"].virtualized and g["native-thp"].guest.page_shift == 21
    assert (g["baseline-4k"].guest.page_shift, g["baseline-4k"].host.page_shift) == (12, 12)
    assert (g["baseline-thp"].guest.page_shift, g["baseline-thp"].host.page_shift) == (21, 21)
    for name, host_shift in (("memctl-2m", 21), ("memctl-4k", 12)):
        c = g[name]
        assert (c.guest.page_shift, c.host.page_shift, c.guest.zeroing, c.host.zeroing) == (30, host_shift, False, True)
    assert g["hugetlb-1g"].host.prealloc and g["hugetlb-1g"].host.page_shift == 30


def test_resolved_toml_round_trips_to_the_same_config() -> None:
    for name in VM_PRESETS:
        c = load_config(name, cpu="zen4")
        again = parse_config(tomllib.loads(c.to_toml()), source=c.source)

        def body(text: str) -> list[str]:
            return [line for line in text.splitlines() if not line.startswith("#")]

        assert body(again.to_toml()) == body(c.to_toml())
        assert (again.tlb_l1, again.tlb_l2, again.psc_guest, again.psc_host, again.ntlb) == (
            c.tlb_l1, c.tlb_l2, c.psc_guest, c.psc_host, c.ntlb)


def test_inline_table_replaces_the_cpu_presets_table_as_a_whole(tmp_path: Path) -> None:
    path = write(tmp_path, 'cpu = "skylake"\n[[tlb.l1]]\npage_sizes = ["4K"]\nentries = 8\nways = 2\n')
    c = load_config(path)
    skylake = load_config("baseline-4k")
    assert [a.entries for a in c.tlb_l1] == [8]
    assert c.tlb_l2 == skylake.tlb_l2 and c.ntlb == skylake.ntlb


def test_defaults_follow_model_md() -> None:
    c = parse_config({})
    assert c.virtualized and c.guest.levels == 4 and c.guest.page_shift == 12 and c.guest.zeroing
    assert c.guest.memory == 16 * GIB and c.host.memory == 64 * GIB and not c.host.prealloc
    assert c.tlb_l1 == () and c.ntlb is None


def test_memory_accepts_binary_units_and_bytes() -> None:
    assert parse_config({"guest": {"memory": "2G"}}).guest.memory == 2 * GIB
    assert parse_config({"guest": {"memory": "2048M"}}).guest.memory == 2 * GIB
    assert parse_config({"guest": {"memory": 3 * GIB}}).guest.memory == 3 * GIB
    assert parse_config({"host": {"memory": "1T"}}).host.memory == 1024 * GIB


@pytest.mark.parametrize(
    ("text", "key", "allowed"),
    [
        ("colour = 1\n", "'colour'", "allowed keys"),
        ("[guest]\npagesize = '4K'\n", "'guest.pagesize'", "allowed keys"),
        ("[guest]\npage_size = '8K'\n", "'guest.page_size'", '"4K", "2M", "1G"'),
        ("[guest]\nmemory = 'lots'\n", "'guest.memory'", "K, M, G or T"),
        ("[host]\nmemory = '1536M'\n", "'host.memory'", "multiple of 1 GiB"),
        ("[guest]\nlevels = 3\n", "'guest.levels'", "4, 5"),
        ("[guest]\nfragmentation = 1.0\n", "'guest.fragmentation'", "0 <= f < 1"),
        ("[[tlb.l1]]\npage_sizes = ['4K']\nentries = 10\nways = 4\n", "'tlb.l1.entries'", "multiple of ways"),
        ("[[tlb.l1]]\npage_sizes = ['4K']\nentries = 8\n", "'tlb.l1.ways'", "entries and ways"),
        ("[[tlb.l2]]\npage_sizes = ['4K']\nways = 8\n", "'tlb.l2.entries'", "entries and ways"),
        ("[[tlb.l1]]\npage_sizes = ['4K', '2M']\nentries = 8\nways = 2\n[[tlb.l1]]\npage_sizes = ['2M']\n"
         "entries = 4\nways = 4\n", "'tlb.l1.page_sizes'", "at most one array per level"),
        ("[[psc.guest]]\nlevel = 4\nentries = 4\nways = 4\n", "'psc.guest.level'", "1..3"),
        ("[host]\nlevels = 5\n[[psc.host]]\nlevel = 0\nentries = 4\nways = 4\n", "'psc.host.level'", "1..4"),
        ("[[psc.guest]]\nlevel = 2\nentries = 4\nways = 4\n[[psc.guest]]\nlevel = 2\nentries = 8\nways = 4\n",
         "'psc.guest.level'", "each level once"),
        ("[ntlb]\nentries = 6\nways = 4\n", "'ntlb.entries'", "multiple of ways"),
        ("cpu = 'pentium'\n", "'cpu'", "skylake"),
        ("virtualized = 'yes'\n", "'virtualized'", "bool"),
    ],
)
def test_invalid_config_names_file_key_and_allowed_values(tmp_path: Path, text: str, key: str, allowed: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message
    assert key in message
    assert allowed in message


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="known vm presets: baseline-4k"):
        load_config("baseline-8k")


def test_bad_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[guest\n"))


def test_a_preset_document_is_a_copy_that_a_sweep_may_edit() -> None:
    """Presets are parsed once per process; what load_raw hands out is the caller's own copy, so a sweep's
    edit of one document never reaches the next load of the same preset."""
    from memmodel.config import load_raw, preset_document

    raw, source = load_raw("baseline-4k")
    assert source == "preset:baseline-4k"
    raw["guest"]["fragmentation"] = 0.99
    raw["host"]["memory"] = "1G"
    preset_document("skylake", "cpu")["tlb"].clear()
    again, _ = load_raw("baseline-4k")
    assert again["guest"]["fragmentation"] == 0.0 and again["host"]["memory"] == "64G"
    config = load_config("baseline-4k", cpu="skylake")
    assert config.guest.fragmentation == 0.0 and config.host.memory == 64 * GIB and config.tlb_l1
    assert parse_config(raw, source).guest.fragmentation == 0.99


def test_a_config_file_is_read_again_on_every_load_even_where_a_preset_has_its_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only shipped presets are resolved once per process: a file may change between loads, and a file
    whose path is a preset's name is the file."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "baseline-4k"
    path.write_text('name = "mine"\nvirtualized = false\n', encoding="utf-8")
    assert not load_config("baseline-4k").virtualized
    path.write_text('name = "mine"\nvirtualized = true\n', encoding="utf-8")
    assert load_config("baseline-4k").virtualized
    path.unlink()
    assert load_config("baseline-4k").name == "baseline-4k"
