# Independent one-off: U records of a lackey --trace-syscalls trace (MODEL.md section 1), as "line address length"
# (decimal; mawk has no 64-bit integers, so values are doubles: exact below 2^53).
function val(s,   i, c, v) { if (s !~ /^0x/) return s + 0; v = 0
  for (i = 3; i <= length(s); i++) { c = index("0123456789abcdef", tolower(substr(s, i, 1))) - 1; v = v * 16 + c }
  return v }
function res(s) { sub(/.*-->[^(]*\(/, "", s); sub(/\).*/, "", s); return val(s) }
function done(k, ok, r,   n, a) { if (!ok) return; n = split(args[k], a, /, */)
  if (name[k] == "munmap") printf "%d %.0f %.0f\n", NR, val(a[1]), val(a[2])
  if (name[k] == "madvise" && (a[3] == 4 || a[3] == 8 || a[3] == 9)) printf "%d %.0f %.0f\n", NR, val(a[1]), val(a[2])
  if (name[k] == "brk") { if ((pid[k]) in brk && r < brk[pid[k]]) printf "%d %.0f %.0f\n", NR, r, brk[pid[k]] - r; brk[pid[k]] = r }
  if (name[k] == "mremap") { if (r != val(a[1])) printf "%d %.0f %.0f\n", NR, val(a[1]), val(a[2])
    else if (val(a[3]) < val(a[2])) printf "%d %.0f %.0f\n", NR, val(a[1]) + val(a[3]), val(a[2]) - val(a[3]) } }
/^SYSCALL\[/ {
  split(substr($0, 9), h, /[],()]/); p = h[1]; t = h[2]; nr = h[4]
  if ($0 ~ /\) \.\.\. \[async\] -->/) {        # completion of a pending blocking call
    for (k = n_open; k >= 1; k--) if (open[k] && async[k] && pid[k] == p && tid[k] == t && num[k] == nr) break
    if (k >= 1) { open[k] = 0; done(k, $0 ~ /Success/, res($0)) }; next }
  k = ++n_open; pid[k] = p; tid[k] = t; num[k] = nr; name[k] = ""; args[k] = ""; open[k] = 1; async[k] = 0
  if (match($0, /sys_(munmap|madvise|brk|mremap) \( [^)]*\)/)) { s = substr($0, RSTART + 4, RLENGTH - 4)
    name[k] = substr(s, 1, index(s, " ") - 1); args[k] = s; sub(/^[a-z]+ \( /, "", args[k]); sub(/ \)$/, "", args[k]) }
  if ($0 ~ /==[0-9]+==/ || $0 !~ /-->/) next   # glued message or no status yet: wait for a continuation
  if ($0 ~ /--> \[async\] \.\.\./) { async[k] = 1; next }
  open[k] = 0; done(k, $0 ~ /Success/, res($0)); next }
/^ *(\[sync\] )?-->/ {
  for (k = n_open; k >= 1; k--) if (open[k]) break
  if (k < 1) next
  if ($0 ~ /\[async\] \.\.\./) { async[k] = 1; next }
  open[k] = 0; done(k, $0 ~ /Success/, res($0)) }
