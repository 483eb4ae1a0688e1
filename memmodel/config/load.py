"""Reading configs: TOML files and shipped presets -> validated :class:`ModelConfig`.

Resolution (docs/model.md section 5): a config may name a CPU preset with ``cpu = "..."``; the preset's
``tlb.l1``, ``tlb.l2``, ``psc.guest``, ``psc.host`` and ``ntlb`` tables are the starting point, and a
table given inline replaces the preset's table of the same name as a whole. A ``--cpu`` override
replaces the config's ``cpu`` before that resolution.

Every invalid input raises :class:`memmodel.errors.ConfigError` naming the file, the key and the
allowed values.
"""

from __future__ import annotations

import copy
import functools
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from memmodel.config.model import (
    GIB,
    NAME_SHIFTS,
    PLACEMENTS,
    SHIFT_NAMES,
    UNMAP_MODES,
    BalloonConfig,
    ModelConfig,
    PscArray,
    SideConfig,
    TlbArray,
)
from memmodel.errors import ConfigError, shorten

_TOP_KEYS = {"name", "description", "virtualized", "cpu", "guest", "host", "tlb", "psc", "ntlb", "cost", "balloon",
             "baseline"}
_COMMON_SIDE_KEYS = {"levels", "page_size", "zeroing", "memory", "fragmentation", "seed", "placement"}
_SIDE_KEYS = _COMMON_SIDE_KEYS | {"unmap"}
_HOST_KEYS = _COMMON_SIDE_KEYS | {"prealloc"}
_BALLOON_KEYS = {"reporting", "interval", "order"}
#: The keys of a ``[cost]`` table (the fields of ``memmodel.analysis.costs.CostModel``; a test keeps the
#: two in step: the config layer cannot import the analysis layer).
COST_KEYS = (
    "zero_gbps_4k", "zero_gbps_2m", "zero_gbps_1g",
    "guest_fault_us_4k", "guest_fault_us_2m", "guest_fault_us_1g",
    "host_fault_us_4k", "host_fault_us_2m", "host_fault_us_1g",
    "walk_load_ns",
)
#: Largest guest or host memory (bytes): the engine stores frame numbers of 4 KiB frames in 32 bits,
#: so 2^32 x 4 KiB = 16 TiB is all it can address.
MAX_MEMORY = (1 << 32) << 12
#: Largest guest memory (bytes): a guest page-table entry keeps its frame + 1 in 32 bits (0 = empty), so
#: the guest's last frame must be below 2^32 - 1: one GiB under 16 TiB, memory being whole GiB.
MAX_GUEST_MEMORY = MAX_MEMORY - (1 << 30)
#: Largest TLB, PSC or nested-TLB array (entries): the engine allocates every entry (a tag and an LRU
#: stamp, about 16 bytes) when the replay starts, so 2^24 entries is already 256 MiB per array; real
#: arrays hold at most a few thousand entries.
MAX_ENTRIES = 1 << 24
_TLB_KEYS = {"l1", "l2"}
_TLB_ARRAY_KEYS = {"page_sizes", "entries", "ways"}
_PSC_KEYS = {"guest", "host"}
_PSC_ARRAY_KEYS = {"level", "entries", "ways"}
_NTLB_KEYS = {"entries", "ways"}
_CPU_KEYS = {"name", "description", "tlb", "psc", "ntlb"}
_CACHE_TABLES = ("tlb.l1", "tlb.l2", "psc.guest", "psc.host", "ntlb")
_UNITS = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(i?B)?\s*$", re.IGNORECASE)


def preset_names(kind: str = "vm") -> list[str]:
    """Names of the shipped presets of ``kind`` ("vm" or "cpu"), sorted."""
    folder = resources.files("memmodel.config") / "presets" / kind
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def preset_text(name: str, kind: str = "vm") -> str:
    """The TOML text of a shipped preset, raising ConfigError with the known names if absent."""
    path = resources.files("memmodel.config") / "presets" / kind / f"{name}.toml"
    if not path.is_file():
        names = preset_names(kind)
        raise ConfigError(
            f"unknown {kind} preset {shorten(name)!r}{_did_you_mean(name, names)}; "
            f"known {kind} presets: {', '.join(names)}"
        )
    return path.read_text(encoding="utf-8")


@functools.cache
def _preset_document_shared(name: str, kind: str) -> dict[str, Any]:
    return tomllib.loads(preset_text(name, kind))


def preset_document(name: str, kind: str = "vm") -> dict[str, Any]:
    """The parsed TOML document of a shipped preset (a copy the caller may edit), raising ConfigError with
    the known names if absent.

    Each preset is parsed once per process (shipped files do not change while it runs): parsing the VM
    and CPU presets again for every replay took ~0.5 ms of the 0.9 ms that a nested replay of a short
    trace took end to end (cProfile, 300 runs of baseline-4k with the skylake CPU on 50 records).
    """
    return copy.deepcopy(_preset_document_shared(name, kind))


def load_config(spec: str | Path, cpu: str | None = None) -> ModelConfig:
    """Load a config from a preset name or a TOML file path, resolving its CPU preset.

    Args:
        spec: a VM preset name (``memmodel configs`` lists them) or the path of a TOML file.
        cpu: a CPU preset name that overrides the config's ``cpu`` key.

    Returns:
        The validated, fully resolved config.
    """
    if _is_config_file(str(spec)):
        raw, source = load_raw(spec)
        return parse_config(raw, source=source, cpu=cpu)
    return _preset_config(str(spec), cpu)


@functools.cache
def _preset_config(name: str, cpu: str | None) -> ModelConfig:
    """A VM preset resolved with a CPU preset, once per process (the config is frozen)."""
    return parse_config(_preset_document_shared(name, "vm"), source=f"preset:{name}", cpu=cpu)


def _is_config_file(spec: str) -> bool:
    """Whether a config spec names a file (a ``.toml`` path, or any path that exists) rather than a preset."""
    path = Path(spec)
    return path.suffix == ".toml" or path.exists()


def load_raw(spec: str | Path) -> tuple[dict[str, Any], str]:
    """The unvalidated TOML document of a preset name or config file, and its source label.

    Sweeps edit this document (e.g. ``host.fragmentation``) before :func:`parse_config` validates it.
    """
    spec_str = str(spec)
    path = Path(spec_str)
    if _is_config_file(spec_str):
        if not path.is_file():
            raise ConfigError(f"{spec_str}: no such config file")
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{source}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                              f"{exc.start}); a TOML config must be UTF-8") from None
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read the config: {exc.strerror or exc}") from None
    else:
        return preset_document(spec_str, "vm"), f"preset:{spec_str}"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {shorten(str(exc))}") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ConfigError(f"{source}: not valid TOML: {shorten(str(exc))}") from None
    return raw, source


def parse_config(raw: dict[str, Any], source: str = "<config>", cpu: str | None = None) -> ModelConfig:
    """Validate a parsed TOML document (docs/model.md section 5) and resolve its CPU preset.

    Args:
        raw: the TOML document as a dict.
        source: the file (or ``preset:NAME``) for error messages.
        cpu: overrides ``raw["cpu"]`` when given.
    """
    _check_keys(raw, _TOP_KEYS, "", source)
    name = _get(raw, "name", str, source, "", default=Path(source).stem if source else "config")
    description = _get(raw, "description", str, source, "", default="")
    virtualized = _get(raw, "virtualized", bool, source, "", default=True)
    baseline = _get(raw, "baseline", str, source, "", default="")
    cpu_name = cpu if cpu is not None else _get(raw, "cpu", str, source, "", default="")

    guest_raw = _table(raw, "guest", source)
    host_raw = _table(raw, "host", source)
    guest = _side(guest_raw, "guest", source, default_memory=16 * GIB, allowed=_SIDE_KEYS)
    host = _side(host_raw, "host", source, default_memory=64 * GIB, allowed=_HOST_KEYS)
    balloon = _balloon(_table(raw, "balloon", source), source)
    if not virtualized:
        if guest.unmap == "passthrough":
            raise ConfigError(f"{source}: key 'guest.unmap' = \"passthrough\" needs virtualized = true; "
                              "allowed with virtualized = false: \"free\"")
        if balloon.reporting:
            raise ConfigError(f"{source}: key 'balloon.reporting' = true needs virtualized = true; "
                              "allowed with virtualized = false: false")

    caches: dict[str, Any] = {}
    if cpu_name:
        cpu_source = f"cpu preset {cpu_name!r}"
        try:
            cpu_raw = _preset_document_shared(cpu_name, "cpu")  # read only here
        except ConfigError as exc:
            raise ConfigError(f"{source}: key 'cpu': {exc}") from None
        _check_keys(cpu_raw, _CPU_KEYS, "", cpu_source)
        caches.update(_cache_tables(cpu_raw, cpu_source))
    caches.update(_cache_tables(raw, source))

    tlb_l1 = _tlb_level(caches.get("tlb.l1", ([], source)), "tlb.l1")
    tlb_l2 = _tlb_level(caches.get("tlb.l2", ([], source)), "tlb.l2")
    psc_guest = _psc_side(caches.get("psc.guest", ([], source)), "psc.guest", guest.levels)
    psc_host = _psc_side(caches.get("psc.host", ([], source)), "psc.host", host.levels)
    ntlb = None
    if "ntlb" in caches:
        table, src = caches["ntlb"]
        _check_keys(table, _NTLB_KEYS, "ntlb", src)
        entries, ways = _entries_ways(table, "ntlb", src)
        if entries > 0:
            ntlb = TlbArray((), entries, ways)

    cost_raw = _table(raw, "cost", source)
    _check_keys(cost_raw, set(COST_KEYS), "cost", source)  # a misspelt cost key: now, not after a replay
    cost = []
    for key, value in cost_raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
            raise ConfigError(f"{source}: key 'cost.{key}' must be a number > 0, got {value!r}")
        cost.append((key, float(value)))

    return ModelConfig(
        name=name,
        description=description,
        virtualized=virtualized,
        cpu=cpu_name,
        guest=guest,
        host=host,
        tlb_l1=tlb_l1,
        tlb_l2=tlb_l2,
        psc_guest=psc_guest,
        psc_host=psc_host,
        ntlb=ntlb,
        source=source,
        cost=tuple(sorted(cost)),
        balloon=balloon,
        baseline=baseline,
    )


def parse_size(value: Any, source: str, key: str) -> int:
    """Parse a memory amount: an integer (bytes) or a string with a binary unit ("16G", "512M").

    Raises:
        ConfigError: naming ``source`` and ``key`` when the value is not a size.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{source}: key {key!r} must be a size like \"16G\" or bytes, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{source}: key {key!r} must not be negative, got {value}")
        return value
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m and len(m.group(1)) <= 30:  # more digits is far past any bound (and int() refuses 4300+)
            return int(m.group(1)) << _UNITS[m.group(2).upper()]
        if m:
            raise ConfigError(f"{source}: key {key!r}: size {shorten(value)!r} is far too large; "
                              f"allowed: at most \"16T\"")
    raise ConfigError(
        f"{source}: key {key!r}: bad size {value!r}; expected bytes or a number with a binary unit "
        "K, M, G or T (e.g. \"16G\")"
    )


def _page_shift(value: Any, source: str, key: str) -> int:
    if isinstance(value, str) and value.strip().upper() in NAME_SHIFTS:
        return NAME_SHIFTS[value.strip().upper()]
    if isinstance(value, int) and not isinstance(value, bool) and value in (1 << 12, 1 << 21, 1 << 30):
        return value.bit_length() - 1
    raise ConfigError(f"{source}: key {key!r}: bad page size {value!r}; allowed: \"4K\", \"2M\", \"1G\"")


def _did_you_mean(word: str, names: Any) -> str:
    """`` (did you mean 'x'?)`` for the nearest of ``names``, or ``""`` when none is close."""
    import difflib

    close = difflib.get_close_matches(str(word), sorted(str(n) for n in names), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_keys(table: dict[str, Any], allowed: set[str], prefix: str, source: str) -> None:
    from memmodel.errors import ConfigKeyError

    for key in table:
        if key not in allowed:
            full = shorten(f"{prefix}.{key}" if prefix else key)
            raise ConfigKeyError(f"{source}: unknown key {full!r}{_did_you_mean(key, allowed)}; "
                                 f"allowed keys here: {', '.join(sorted(allowed))}")


def _get(table: dict[str, Any], key: str, typ: type, source: str, prefix: str, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    full = f"{prefix}.{key}" if prefix else key
    if typ is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif typ is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, typ)
    if not ok:
        raise ConfigError(f"{source}: key {full!r} must be a {typ.__name__}, got {value!r}")
    return float(value) if typ is float else value


def _table(raw: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: key {key!r} must be a table ([{key}])")
    return value


def _side(table: dict[str, Any], side: str, source: str, default_memory: int, allowed: set[str]) -> SideConfig:
    _check_keys(table, allowed, side, source)
    levels = _get(table, "levels", int, source, side, default=4)
    if levels not in (4, 5):
        raise ConfigError(f"{source}: key '{side}.levels' = {levels}; allowed values: 4, 5")
    page_shift = _page_shift(table.get("page_size", "4K"), source, f"{side}.page_size")
    zeroing = _get(table, "zeroing", bool, source, side, default=True)
    memory = parse_size(table.get("memory", default_memory), source, f"{side}.memory")
    if memory <= 0 or memory % GIB:
        raise ConfigError(
            f"{source}: key '{side}.memory' = {table.get('memory')!r}; allowed: a positive multiple of 1 GiB"
        )
    if memory > MAX_MEMORY:
        raise ConfigError(
            f"{source}: key '{side}.memory' = {table.get('memory')!r} is more than the model can hold; allowed: "
            "at most \"16T\" (the engine stores 4 KiB frame numbers in 32 bits: 2^32 x 4 KiB = 16 TiB)"
        )
    if side == "guest" and memory > MAX_GUEST_MEMORY:
        raise ConfigError(
            f"{source}: key 'guest.memory' = {table.get('memory')!r} is more than the model can hold; allowed: "
            "at most \"16383G\", just under 16T (a guest page-table entry keeps its frame + 1 in 32 bits)"
        )
    fragmentation = _get(table, "fragmentation", float, source, side, default=0.0)
    if not 0.0 <= fragmentation < 1.0:
        raise ConfigError(f"{source}: key '{side}.fragmentation' = {fragmentation}; allowed: 0 <= f < 1")
    seed = _get(table, "seed", int, source, side, default=0)
    if not 0 <= seed < (1 << 64):
        raise ConfigError(f"{source}: key '{side}.seed' = {seed}; allowed: 0 <= seed < 2^64")
    prealloc = _get(table, "prealloc", bool, source, side, default=False)
    placement = _choice(table, "placement", PLACEMENTS, source, side)
    unmap = _choice(table, "unmap", UNMAP_MODES, source, side)
    return SideConfig(levels, page_shift, zeroing, memory, fragmentation, seed, prealloc, placement, unmap)


def _choice(table: dict[str, Any], key: str, allowed: tuple[str, ...], source: str, prefix: str) -> str:
    """A string key restricted to ``allowed`` (the first allowed value is the default)."""
    value = _get(table, key, str, source, prefix, default=allowed[0])
    if value not in allowed:
        raise ConfigError(f"{source}: key '{prefix}.{key}' = {value!r}; allowed values: "
                          + ", ".join(f'"{a}"' for a in allowed))
    return str(value)


def _balloon(table: dict[str, Any], source: str) -> BalloonConfig:
    """The ``[balloon]`` table (docs/model.md v2 sections 5 and 8)."""
    _check_keys(table, _BALLOON_KEYS, "balloon", source)
    reporting = _get(table, "reporting", bool, source, "balloon", default=False)
    default = BalloonConfig()
    interval = table.get("interval", default.interval)
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise ConfigError(f"{source}: key 'balloon.interval' = {interval!r}; allowed: an integer >= 1 "
                          "(clock records between reporting passes)")
    order = table.get("order", default.order)
    if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= 18:
        raise ConfigError(f"{source}: key 'balloon.order' = {order!r}; allowed: an integer 0..18 "
                          "(9 = 2 MiB blocks)")
    return BalloonConfig(reporting, interval, order)


def _cache_tables(raw: dict[str, Any], source: str) -> dict[str, tuple[Any, str]]:
    """The translation-cache tables a document gives, keyed by their dotted name, with their source."""
    out: dict[str, tuple[Any, str]] = {}
    tlb = _table(raw, "tlb", source)
    _check_keys(tlb, _TLB_KEYS, "tlb", source)
    psc = _table(raw, "psc", source)
    _check_keys(psc, _PSC_KEYS, "psc", source)
    for level in ("l1", "l2"):
        if level in tlb:
            out[f"tlb.{level}"] = (tlb[level], source)
    for side in ("guest", "host"):
        if side in psc:
            out[f"psc.{side}"] = (psc[side], source)
    if "ntlb" in raw:
        out["ntlb"] = (raw["ntlb"], source)
    return out


def _array_list(value: Any, key: str, source: str) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{source}: key {key!r} must be an array of tables ([[{key}]])")
    return value


def _entries_ways(table: dict[str, Any], key: str, source: str) -> tuple[int, int]:
    for k in ("entries", "ways"):
        if k not in table:
            raise ConfigError(f"{source}: key '{key}.{k}' is missing; every array needs entries and ways")
    entries = _get(table, "entries", int, source, key, default=0)
    ways = _get(table, "ways", int, source, key, default=0)
    if entries < 0:
        raise ConfigError(f"{source}: key '{key}.entries' = {entries}; allowed: entries >= 0")
    if entries > MAX_ENTRIES:
        raise ConfigError(
            f"{source}: key '{key}.entries' = {entries} is more than the model can hold; allowed: at most "
            f"{MAX_ENTRIES:,} (2^24) entries per array (the engine allocates every entry at start-up, about "
            "16 bytes each; real TLBs hold thousands)"
        )
    if ways < 1:
        raise ConfigError(f"{source}: key '{key}.ways' = {ways}; allowed: ways >= 1")
    if entries % ways:
        raise ConfigError(
            f"{source}: key '{key}.entries' = {entries} is not divisible by '{key}.ways' = {ways}; "
            "allowed: entries a multiple of ways"
        )
    return entries, ways


def _tlb_level(given: tuple[Any, str], key: str) -> tuple[TlbArray, ...]:
    value, source = given
    arrays: list[TlbArray] = []
    seen: set[int] = set()
    for table in _array_list(value, key, source):
        _check_keys(table, _TLB_ARRAY_KEYS, key, source)
        if "page_sizes" not in table:
            raise ConfigError(f"{source}: key '{key}.page_sizes' is missing; allowed: a list of \"4K\", \"2M\", \"1G\"")
        sizes = table["page_sizes"]
        if not isinstance(sizes, list) or not sizes:
            raise ConfigError(f"{source}: key '{key}.page_sizes' must be a non-empty list of \"4K\", \"2M\", \"1G\"")
        shifts = [_page_shift(s, source, f"{key}.page_sizes") for s in sizes]
        entries, ways = _entries_ways(table, key, source)
        for s in shifts:
            if s in seen or shifts.count(s) > 1:
                name = SHIFT_NAMES[s]
                raise ConfigError(
                    f"{source}: key '{key}.page_sizes': page size {name!r} is listed twice in one level; "
                    "allowed: each page size in at most one array per level"
                )
        seen.update(shifts)
        if entries > 0:
            arrays.append(TlbArray(tuple(sorted(shifts)), entries, ways))
    return tuple(arrays)


def _psc_side(given: tuple[Any, str], key: str, levels: int) -> tuple[PscArray, ...]:
    value, source = given
    arrays: list[PscArray] = []
    seen: set[int] = set()
    for table in _array_list(value, key, source):
        _check_keys(table, _PSC_ARRAY_KEYS, key, source)
        if "level" not in table:
            raise ConfigError(f"{source}: key '{key}.level' is missing; allowed: 1..{levels - 1}")
        level = _get(table, "level", int, source, key, default=0)
        if not 1 <= level <= levels - 1:
            raise ConfigError(
                f"{source}: key '{key}.level' = {level} is out of range for {levels}-level tables; "
                f"allowed: 1..{levels - 1}"
            )
        if level in seen:
            raise ConfigError(f"{source}: key '{key}.level' = {level} is given twice; allowed: each level once")
        seen.add(level)
        entries, ways = _entries_ways(table, key, source)
        if entries > 0:
            arrays.append(PscArray(level, entries, ways))
    return tuple(sorted(arrays, key=lambda a: a.level))
