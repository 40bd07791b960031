# prep.py SRC.cu DST.cpp — a CUDA source as host C++ for the emulator (run.sh):
# kernel<<<grid, block, smem, stream>>>(args); becomes
# emu_launch(grid, block, smem, [&] { kernel(args); }); and
# `extern __shared__ T name[];` becomes a pointer to the block's dynamic buffer.
import re, sys, pathlib
src, dst = sys.argv[1], sys.argv[2]
s = pathlib.Path(src).read_text()
# kernel<<<grid, block, smem, stream>>>(args);  ->  emu_launch(grid, block, smem, [&] { kernel(args); });
pat = re.compile(r'([A-Za-z_]\w*(?:<[^<>;]*>)?)<<<(.*?)>>>\((.*?)\);', re.S)
def launch(m):
    name, cfg, args = m.group(1), m.group(2), m.group(3)
    parts = [p.strip() for p in split_top(cfg)]
    while len(parts) < 3: parts.append('0')
    return 'emu_launch(%s, %s, %s, [&] { %s(%s); });' % (parts[0], parts[1], parts[2], name, args)
def split_top(t):
    out, depth, cur = [], 0, ''
    for ch in t:
        if ch in '([{': depth += 1
        if ch in ')]}': depth -= 1
        if ch == ',' and depth == 0: out.append(cur); cur = ''
        else: cur += ch
    out.append(cur)
    return out
s, n = pat.subn(launch, s)
s = re.sub(r'extern __shared__ (\w+) (\w+)\[\];', r'\1 *\2 = (\1 *)emu_dynamic_smem;', s)
pathlib.Path(dst).write_text(s)
print(f'{src}: {n} launches rewritten', file=sys.stderr)
