#!/bin/sh
# Rebuild the shipped traces in traces/: gcc -O2, then valgrind lackey (--trace-mem=yes; the
# lifecycle and sparse traces also --trace-syscalls=yes, so their munmap/madvise/brk/mremap calls
# become U records).
# Valgrind lays out the address space itself (no ASLR), so re-recording with the same
# Valgrind (3.19.0), gcc (12.2) and libc (Debian 12) gives the same addresses.
# The trace goes to a dedicated fd (--log-fd=3), so the program's own stdout stays out of it.
# Usage: sh traces/programs/record.sh [pchase|stream|qsort|lifecycle|sparse]...   (needs gcc, valgrind, xz)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$(dirname "$here")
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
for prog in pchase stream qsort lifecycle sparse; do
    gcc -O2 -o "$build/$prog" "$here/$prog.c"
done
rec() { # name, extra valgrind options ("" or --trace-syscalls=yes), then the command
    name=$1; opts=$2; shift 2
    # $opts is unquoted on purpose: empty means no option at all
    (cd "$build" && valgrind --tool=lackey --trace-mem=yes $opts --log-fd=3 "$@" 3>"$build/$name.lackey" >/dev/null)
    xz -9 -T1 -c "$build/$name.lackey" > "$out/$name.lackey.xz"
    echo "$name: $(wc -l < "$build/$name.lackey") lines -> $out/$name.lackey.xz"
}
want=${*:-pchase stream qsort lifecycle sparse}
for name in $want; do
    case $name in
        pchase) rec pchase "" ./pchase 400000 ;;
        stream) rec stream "" ./stream 2 ;;
        qsort) rec qsort "" ./qsort 8000 ;;
        lifecycle) rec lifecycle --trace-syscalls=yes ./lifecycle ;;
        sparse) rec sparse --trace-syscalls=yes ./sparse ;;
        *) echo "unknown trace: $name" >&2; exit 2 ;;
    esac
done
