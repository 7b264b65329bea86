import sys
INPLACE = {"add", "mul", "rms_norm", "unary", "soft_max", "scale"}
class T:
    def __init__(s, op, ne, esz, src=(), view=None, inp=False, leaf=False):
        s.op, s.ne, s.esz, s.src, s.leaf, s.inp = op, list(ne) + [1] * (4 - len(ne)), esz, list(src), leaf, inp
        s.view_src = None
        if view is not None:
            s.view_src = view.view_src or view
        s.visited = False
    def nbytes(s):
        n = s.esz
        for x in s.ne: n *= x
        return n
    def layout(s): return (s.esz, tuple(s.ne))

class G:
    def __init__(s): s.nodes = []; s.leafs = []
    def visit(s, t):
        if t.visited: return
        t.visited = True
        for p in t.src: s.visit(p)
        (s.leafs if t.op == "none" else s.nodes).append(t)

def pad(x, a): return (x + a - 1) // a * a

def galloc(g, align):
    nodes = g.nodes
    children, views = {}, {}
    for n in nodes:
        if n.view_src is not None: views[id(n.view_src)] = views.get(id(n.view_src), 0) + 1
        for p in n.src: children[id(p)] = children.get(id(p), 0) + 1
    blocks = [[0, 1 << 62]]; hw = [0]
    off, alloc = {}, set()
    def dalloc(sz):
        sz = pad(sz, align); best = -1; bb = 1 << 63
        for i in range(len(blocks) - 1):
            if blocks[i][1] >= sz and blocks[i][1] <= bb: best, bb = i, blocks[i][1]
        if best < 0: best = len(blocks) - 1
        b = blocks[best]; o = b[0]; b[0] += sz; b[1] -= sz
        if b[1] == 0: blocks.pop(best)
        hw[0] = max(hw[0], o + sz); return o
    def dfree(o, sz):
        sz = pad(sz, align)
        for i, b in enumerate(blocks):
            if b[0] + b[1] == o:
                b[1] += sz
                if i + 1 < len(blocks) and blocks[i + 1][0] == b[0] + b[1]:
                    b[1] += blocks[i + 1][1]; blocks.pop(i + 1)
                return
            if o + sz == b[0]:
                b[0] = o; b[1] += sz; return
        i = 0
        while i < len(blocks) and blocks[i][0] < o: i += 1
        blocks.insert(i, [o, sz])
    def own(t): return not t.leaf
    def allocate(t):
        if id(t) in alloc or t.view_src is not None or t.leaf: return
        if t.op in INPLACE:
            for p in t.src:
                if not own(p) or p.view_src is not None or p.layout() != t.layout(): continue
                if children.get(id(p), 0) == 1 and views.get(id(p), 0) == 0 and id(p) in alloc:
                    off[id(t)] = off[id(p)]; alloc.discard(id(p)); alloc.add(id(t)); return
        off[id(t)] = dalloc(t.nbytes()); alloc.add(id(t))
    def release(t):
        if id(t) not in alloc: return
        dfree(off[id(t)], t.nbytes()); alloc.discard(id(t))
    for n in nodes:
        if n.inp: allocate(n)
    for t in g.leafs:
        if t.inp: allocate(t)
    for n in nodes:
        allocate(n)
        for p in n.src:
            if p.leaf and not p.inp: continue
            children[id(p)] -= 1
            if children[id(p)] == 0 and views.get(id(p), 0) == 0:
                if p.view_src is not None:
                    r = p.view_src
                    views[id(r)] -= 1
                    if views[id(r)] == 0 and children.get(id(r), 0) == 0 and not r.leaf: release(r)
                else:
                    release(p)
    return hw[0]

F32, F16 = 4, 2
def W(ne, esz=F32): return T("none", ne, esz, leaf=True)
def op(o, ne, esz, *src): return T(o, ne, esz, src)
def view(x, ne): return T("view", ne, x.esz, [x], view=x)

def gemma3(n_layer=2, E=1152, F=4304, H=16, image=896, patch=14, n_text=2560, merge=4, fa=True, wtype=F16, align=32):
    D = E // H; ps = image // patch; P = ps * ps
    g = G()
    inp_raw = T("none", [image, image, 3, 1], F32, inp=True)
    pe = W([patch, patch, 3, E])
    im2col = op("im2col", [3 * patch * patch, ps, ps, 1], F16, pe, inp_raw)
    mm = op("mul_mat", [P, E], F32, view(im2col, [3 * patch * patch, P]), view(pe, [3 * patch * patch, E]))
    r = view(view(mm, [ps, ps, 1, E]), [ps, ps, E, 1])
    c = op("cont", [ps, ps, E, 1], F32, r)
    x = op("cont", [E, P], F32, view(view(c, [P, E, 1]), [E, P, 1]))
    x = op("add", [E, P], F32, x, W([E]))
    x = op("add", [E, P], F32, x, W([E, P]))
    inpL = view(x, [E, P])
    order = []
    for il in range(n_layer):
        cur = op("norm", [E, P], F32, inpL)
        cur = op("mul", [E, P], F32, cur, W([E])); cur = op("add", [E, P], F32, cur, W([E]))
        qkv = []
        for _ in range(3):
            y = op("mul_mat", [E, P], F32, W([E, E], wtype), cur); y = op("add", [E, P], F32, y, W([E]))
            qkv.append(view(y, [D, H, P, 1]))
        Q, K, V = qkv
        for t in qkv: g.visit(t)   # ggml_build_forward_order
        q = view(Q, [D, P, H, 1]); k = view(K, [D, P, H, 1])
        if fa:
            v = view(V, [D, P, H, 1])
            kc = op("cpy", [D, P, H, 1], F16, k); vc = op("cpy", [D, P, H, 1], F16, v)
            a = op("flash_attn_ext", [D, H, P, 1], F32, q, kc, vc)
            a = view(a, [E, P])
        else:
            v = op("cont", [P, D, H, 1], F32, view(V, [P, D, H, 1]))
            kq = op("mul_mat", [P, P, H, 1], F32, k, q)
            kq = op("soft_max", [P, P, H, 1], F32, kq)
            kqv = op("mul_mat", [D, P, H, 1], F32, v, kq)
            a = op("cont", [E, P], F32, view(kqv, [D, H, P, 1]))
        a = op("mul_mat", [E, P], F32, W([E, E], wtype), a); a = op("add", [E, P], F32, a, W([E]))
        cur = op("add", [E, P], F32, a, inpL)
        inpL = cur
        cur = op("norm", [E, P], F32, cur)
        cur = op("mul", [E, P], F32, cur, W([E])); cur = op("add", [E, P], F32, cur, W([E]))
        up = op("mul_mat", [F, P], F32, W([E, F], wtype), cur); up = op("add", [F, P], F32, up, W([F]))
        up = op("unary", [F, P], F32, up)
        dn = op("mul_mat", [E, P], F32, W([F, E], F16 if wtype == 34 else wtype), up); dn = op("add", [E, P], F32, dn, W([E]))
        cur = op("add", [E, P], F32, inpL, dn)
        inpL = cur
    cur = op("norm", [E, P], F32, inpL)
    cur = op("mul", [E, P], F32, cur, W([E])); cur = op("add", [E, P], F32, cur, W([E]))
    cur = view(cur, [E, P, 1])
    cur = op("cont", [ps, ps, E, 1], F32, view(cur, [P, E, 1]))
    po = ps // merge
    cur = op("pool_2d", [po, po, E, 1], F32, cur)
    cur = op("cont", [E, po * po, 1], F32, view(view(cur, [po * po, E, 1]), [E, po * po, 1]))
    cur = op("rms_norm", [E, po * po, 1], F32, cur)
    cur = op("mul", [E, po * po, 1], F32, cur, W([E]))
    wt = op("cont", [E, n_text], F16, view(W([n_text, E], F16), [E, n_text]))
    out = op("mul_mat", [n_text, po * po, 1], F32, wt, cur)
    g.visit(out)
    return galloc(g, align)

if __name__ == "__main__":
    for fa in (True, False):
        print("fa", fa, gemma3(fa=fa))
