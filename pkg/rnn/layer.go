package rnn

// layer is one direction of one recurrent layer: the offsets of its four
// parameters in the flat vector. It holds no activations; those live in a
// layerTape so that one model can run on several goroutines at once.
type layer struct {
	cell    Cell
	in, hid int
	wih     int // weight_ih [G*H, in]
	whh     int // weight_hh [G*H, H]
	bih     int // bias_ih [G*H]
	bhh     int // bias_hh [G*H]
}

// layerTape records one direction's forward pass over a window, as needed by
// the backward pass, plus the scratch buffers of both passes. Buffers grow
// to the largest window seen and are reused, so the time loop allocates
// nothing.
type layerTape[F Float] struct {
	T, B    int
	x       []F   // input [T*B*in]; owned by the caller until backward
	lengths []int // valid steps per sequence; nil means all T
	act     []F   // [T*B*G*H] gate activations (RNN: h)
	hn      []F   // GRU only: W_hn h + b_hn per step [T*B*H]
	hs      []F   // states [(T+1)*B*H]; hs[0] is the initial state
	cs      []F   // LSTM cells [(T+1)*B*H]
	tc      []F   // LSTM tanh(c_t) [T*B*H]
	out     []F   // outputs [T*B*H], zero at padded steps
	bias    []F   // combined bias scratch [G*H]
	gh      []F   // GRU recurrent projection scratch [B*G*H]
	dG      []F   // gradient of the input-side pre-activations [T*B*G*H]
	dGh     []F   // GRU: gradient of the recurrent-side pre-activations
	dh, dc  []F   // running state gradients [B*H]
	dx      []F   // gradient of the input [T*B*in]

	// Token input (first layer of a token model): the input of row r is
	// row tok[r] of the embedding table at offset emb, V rows. The input
	// projection is then a gather from the table projected once, and the
	// weight and embedding gradients GEMMs run over V rows, not T*B.
	tok  []int32
	V    int
	emb  int
	proj []F // [V*G] projected table, or the scattered gradient S
}

// forward runs the layer over x [T, B, in] from the state (h0, c0), each
// [B, H] or nil for zeros. Steps t >= lengths[b] keep the state and output 0.
func forward[F Float](l *layer, vals []F, tp *layerTape[F], x []F, T, B int, lengths []int, h0, c0 []F) {
	H, G := l.hid, l.cell.gates()*l.hid
	tp.T, tp.B, tp.x, tp.lengths = T, B, x, lengths
	tp.act = grow(tp.act, T*B*G)
	tp.hs = grow(tp.hs, (T+1)*B*H)
	tp.out = grow(tp.out, T*B*H)
	tp.bias = grow(tp.bias, G)
	if h0 != nil {
		copy(tp.hs[:B*H], h0)
	} else {
		clear(tp.hs[:B*H])
	}
	wih, whh := view(vals, l.wih, G*l.in), view(vals, l.whh, G*H)
	bih, bhh := view(vals, l.bih, G), view(vals, l.bhh, G)

	// Input projection of every step in one GEMM, biases folded in. The GRU
	// keeps b_hh apart because b_hn sits inside the reset product.
	copy(tp.bias, bih)
	if l.cell != GRU {
		for j := range tp.bias {
			tp.bias[j] += bhh[j]
		}
	}
	if tp.tok != nil {
		table := view(vals, tp.emb, tp.V*l.in)
		tp.proj = grow(tp.proj, tp.V*G)
		fillRows(tp.proj, tp.V, tp.bias)
		gemm(false, true, tp.V, G, l.in, 1, table, l.in, wih, l.in, 1, tp.proj, G)
		for r, tok := range tp.tok[:T*B] {
			copy(tp.act[r*G:(r+1)*G], tp.proj[int(tok)*G:(int(tok)+1)*G])
		}
	} else {
		fillRows(tp.act, T*B, tp.bias)
		gemm(false, true, T*B, G, l.in, 1, x, l.in, wih, l.in, 1, tp.act, G)
	}

	switch l.cell {
	case LSTM:
		tp.cs = grow(tp.cs, (T+1)*B*H)
		tp.tc = grow(tp.tc, T*B*H)
		if c0 != nil {
			copy(tp.cs[:B*H], c0)
		} else {
			clear(tp.cs[:B*H])
		}
		for t := 0; t < T; t++ {
			a := tp.act[t*B*G : (t+1)*B*G]
			gemm(false, true, B, G, H, 1, tp.hs[t*B*H:(t+1)*B*H], H, whh, H, 1, a, G)
			lstmStep(tp, a, t, B, H)
		}
	case GRU:
		tp.hn = grow(tp.hn, T*B*H)
		tp.gh = grow(tp.gh, B*G)
		for t := 0; t < T; t++ {
			fillRows(tp.gh, B, bhh)
			gemm(false, true, B, G, H, 1, tp.hs[t*B*H:(t+1)*B*H], H, whh, H, 1, tp.gh, G)
			gruStep(tp, t, B, H)
		}
	default:
		for t := 0; t < T; t++ {
			a := tp.act[t*B*G : (t+1)*B*G]
			gemm(false, true, B, G, H, 1, tp.hs[t*B*H:(t+1)*B*H], H, whh, H, 1, a, G)
			rnnStep(tp, a, t, B, H, l.cell == RNNReLU)
		}
	}
}

// frozen handles a padded step of sequence b: state carried, output zero,
// activations zeroed so that the backward pass sees no gradient there.
func frozen[F Float](tp *layerTape[F], t, b, H, G int) {
	copy(tp.hs[((t+1)*tp.B+b)*H:((t+1)*tp.B+b+1)*H], tp.hs[(t*tp.B+b)*H:(t*tp.B+b+1)*H])
	if tp.cs != nil && len(tp.cs) >= (tp.T+1)*tp.B*H {
		copy(tp.cs[((t+1)*tp.B+b)*H:((t+1)*tp.B+b+1)*H], tp.cs[(t*tp.B+b)*H:(t*tp.B+b+1)*H])
	}
	clear(tp.out[(t*tp.B+b)*H : (t*tp.B+b+1)*H])
	clear(tp.act[(t*tp.B+b)*G : (t*tp.B+b+1)*G])
}

func lstmStep[F Float](tp *layerTape[F], a []F, t, B, H int) {
	G := 4 * H
	for b := 0; b < B; b++ {
		if tp.lengths != nil && t >= tp.lengths[b] {
			frozen(tp, t, b, H, G)
			continue
		}
		g := a[b*G : (b+1)*G]
		cp := tp.cs[(t*B+b)*H : (t*B+b+1)*H]
		cn := tp.cs[((t+1)*B+b)*H : ((t+1)*B+b+1)*H]
		hn := tp.hs[((t+1)*B+b)*H : ((t+1)*B+b+1)*H]
		tc := tp.tc[(t*B+b)*H : (t*B+b+1)*H]
		out := tp.out[(t*B+b)*H : (t*B+b+1)*H]
		sigmoidSlice(g[:2*H])
		tanhSlice(g[2*H : 3*H])
		sigmoidSlice(g[3*H:])
		gi, gf, gg, go_ := g[0:H], g[H:2*H], g[2*H:3*H], g[3*H:4*H]
		for j := 0; j < H; j++ {
			c := gf[j]*cp[j] + gi[j]*gg[j]
			cn[j], tc[j] = c, c
		}
		tanhSlice(tc)
		for j := 0; j < H; j++ {
			h := go_[j] * tc[j]
			hn[j], out[j] = h, h
		}
	}
}

func gruStep[F Float](tp *layerTape[F], t, B, H int) {
	G := 3 * H
	a := tp.act[t*B*G : (t+1)*B*G]
	for b := 0; b < B; b++ {
		if tp.lengths != nil && t >= tp.lengths[b] {
			frozen(tp, t, b, H, G)
			clear(tp.hn[(t*B+b)*H : (t*B+b+1)*H])
			continue
		}
		g := a[b*G : (b+1)*G]
		gh := tp.gh[b*G : (b+1)*G]
		hp := tp.hs[(t*B+b)*H : (t*B+b+1)*H]
		hnew := tp.hs[((t+1)*B+b)*H : ((t+1)*B+b+1)*H]
		hnSave := tp.hn[(t*B+b)*H : (t*B+b+1)*H]
		out := tp.out[(t*B+b)*H : (t*B+b+1)*H]
		for j := 0; j < 2*H; j++ {
			g[j] += gh[j]
		}
		sigmoidSlice(g[:2*H])
		r, z, n := g[0:H], g[H:2*H], g[2*H:3*H]
		hnn := gh[2*H : 3*H]
		copy(hnSave, hnn)
		for j := 0; j < H; j++ {
			n[j] += r[j] * hnn[j]
		}
		tanhSlice(n)
		for j := 0; j < H; j++ {
			h := (1-z[j])*n[j] + z[j]*hp[j]
			hnew[j], out[j] = h, h
		}
	}
}

func rnnStep[F Float](tp *layerTape[F], a []F, t, B, H int, relu bool) {
	for b := 0; b < B; b++ {
		if tp.lengths != nil && t >= tp.lengths[b] {
			frozen(tp, t, b, H, H)
			continue
		}
		g := a[b*H : (b+1)*H]
		hn := tp.hs[((t+1)*B+b)*H : ((t+1)*B+b+1)*H]
		out := tp.out[(t*B+b)*H : (t*B+b+1)*H]
		if relu {
			for j, v := range g {
				g[j] = max(v, 0)
			}
		} else {
			tanhSlice(g)
		}
		copy(hn, g)
		copy(out, g)
	}
}

// backward propagates dOut [T, B, H] (gradient of the outputs, may be nil)
// and the gradients of the final state (dhT, dcT, each [B, H] or nil) back
// through the window. It adds the parameter gradients into grads, leaves the
// input gradient in tp.dx when needInput is set, and returns the gradients of
// the initial state (views of tape buffers, valid until the next call).
func backward[F Float](l *layer, vals, grads []F, tp *layerTape[F], dOut, dhT, dcT []F, needInput bool) (dh0, dc0 []F) {
	T, B, H := tp.T, tp.B, l.hid
	G := l.cell.gates() * H
	tp.dG = grow(tp.dG, T*B*G)
	tp.dh = grow(tp.dh, B*H)
	if dhT != nil {
		copy(tp.dh, dhT)
	} else {
		clear(tp.dh)
	}
	whh := view(vals, l.whh, G*H)
	dGh := tp.dG
	switch l.cell {
	case LSTM:
		tp.dc = grow(tp.dc, B*H)
		if dcT != nil {
			copy(tp.dc, dcT)
		} else {
			clear(tp.dc)
		}
		for t := T - 1; t >= 0; t-- {
			lstmBack(tp, dOut, t, B, H)
			gemm(false, false, B, H, G, 1, tp.dG[t*B*G:(t+1)*B*G], G, whh, H, 1, tp.dh, H)
		}
	case GRU:
		tp.dGh = grow(tp.dGh, T*B*G)
		dGh = tp.dGh
		for t := T - 1; t >= 0; t-- {
			gruBack(tp, dOut, t, B, H)
			gemm(false, false, B, H, G, 1, tp.dGh[t*B*G:(t+1)*B*G], G, whh, H, 1, tp.dh, H)
		}
	default:
		for t := T - 1; t >= 0; t-- {
			rnnBack(tp, dOut, t, B, H, l.cell == RNNReLU)
			gemm(false, false, B, H, G, 1, tp.dG[t*B*G:(t+1)*B*G], G, whh, H, 1, tp.dh, H)
		}
	}
	// Weight gradients over all steps at once.
	gemm(true, false, G, H, T*B, 1, dGh, G, tp.hs[:T*B*H], H, 1, view(grads, l.whh, G*H), H)
	addColSums(view(grads, l.bhh, G), dGh, T*B)
	if tp.tok != nil {
		// S[v] = sum of dG over rows reading token v; then
		// dW_ih += S^T Emb, db_ih += colsum S, dEmb += S W_ih.
		S := grow(tp.proj, tp.V*G)
		clear(S)
		for r, tok := range tp.tok[:T*B] {
			addTo(S[int(tok)*G:(int(tok)+1)*G], tp.dG[r*G:(r+1)*G])
		}
		table := view(vals, tp.emb, tp.V*l.in)
		gemm(true, false, G, l.in, tp.V, 1, S, G, table, l.in, 1, view(grads, l.wih, G*l.in), l.in)
		addColSums(view(grads, l.bih, G), S, tp.V)
		if needInput {
			gemm(false, false, tp.V, l.in, G, 1, S, G, view(vals, l.wih, G*l.in), l.in, 1, view(grads, tp.emb, tp.V*l.in), l.in)
		}
		needInput = false
	} else {
		gemm(true, false, G, l.in, T*B, 1, tp.dG, G, tp.x, l.in, 1, view(grads, l.wih, G*l.in), l.in)
		addColSums(view(grads, l.bih, G), tp.dG, T*B)
	}
	if needInput {
		tp.dx = grow(tp.dx, T*B*l.in)
		gemm(false, false, T*B, l.in, G, 1, tp.dG, G, view(vals, l.wih, G*l.in), l.in, 0, tp.dx, l.in)
	}
	if l.cell == LSTM {
		return tp.dh, tp.dc
	}
	return tp.dh, nil
}

// stateGrad adds the output gradient of sequence b at step t (dOut may be
// nil) into its running state gradient and returns that row: the total
// gradient reaching h_t.
func (tp *layerTape[F]) stateGrad(dOut []F, t, b, H int) []F {
	dh := tp.dh[b*H : (b+1)*H]
	if dOut != nil {
		addTo(dh, dOut[(t*tp.B+b)*H:(t*tp.B+b+1)*H])
	}
	return dh
}

// padded reports whether step t of sequence b lies past its length; the
// state gradient then passes through the step unchanged.
func (tp *layerTape[F]) padded(t, b int) bool {
	return tp.lengths != nil && t >= tp.lengths[b]
}

func lstmBack[F Float](tp *layerTape[F], dOut []F, t, B, H int) {
	G := 4 * H
	for b := 0; b < B; b++ {
		dg := tp.dG[(t*B+b)*G : (t*B+b+1)*G]
		if tp.padded(t, b) {
			clear(dg)
			continue
		}
		g := tp.act[(t*B+b)*G : (t*B+b+1)*G]
		dh := tp.stateGrad(dOut, t, b, H)
		dc := tp.dc[b*H : (b+1)*H]
		cp := tp.cs[(t*B+b)*H : (t*B+b+1)*H]
		tc := tp.tc[(t*B+b)*H : (t*B+b+1)*H]
		for j := 0; j < H; j++ {
			d := dh[j]
			i, f, gv, o := g[j], g[H+j], g[2*H+j], g[3*H+j]
			th := tc[j]
			c := dc[j] + d*o*(1-th*th)
			dg[j] = c * gv * i * (1 - i)
			dg[H+j] = c * cp[j] * f * (1 - f)
			dg[2*H+j] = c * i * (1 - gv*gv)
			dg[3*H+j] = d * th * o * (1 - o)
			dc[j] = c * f
			dh[j] = 0 // the recurrent GEMM adds dG·W_hh next
		}
	}
}

func gruBack[F Float](tp *layerTape[F], dOut []F, t, B, H int) {
	G := 3 * H
	for b := 0; b < B; b++ {
		dg := tp.dG[(t*B+b)*G : (t*B+b+1)*G]
		dgh := tp.dGh[(t*B+b)*G : (t*B+b+1)*G]
		if tp.padded(t, b) {
			clear(dg)
			clear(dgh)
			continue
		}
		g := tp.act[(t*B+b)*G : (t*B+b+1)*G]
		hnn := tp.hn[(t*B+b)*H : (t*B+b+1)*H]
		hp := tp.hs[(t*B+b)*H : (t*B+b+1)*H]
		dh := tp.stateGrad(dOut, t, b, H)
		for j := 0; j < H; j++ {
			d := dh[j]
			r, z, n := g[j], g[H+j], g[2*H+j]
			dan := d * (1 - z) * (1 - n*n)
			dar := dan * hnn[j] * r * (1 - r)
			daz := d * (hp[j] - n) * z * (1 - z)
			dg[j], dg[H+j], dg[2*H+j] = dar, daz, dan
			dgh[j], dgh[H+j], dgh[2*H+j] = dar, daz, dan*r
			dh[j] = d * z
		}
	}
}

func rnnBack[F Float](tp *layerTape[F], dOut []F, t, B, H int, relu bool) {
	for b := 0; b < B; b++ {
		dg := tp.dG[(t*B+b)*H : (t*B+b+1)*H]
		if tp.padded(t, b) {
			clear(dg)
			continue
		}
		h := tp.act[(t*B+b)*H : (t*B+b+1)*H]
		dh := tp.stateGrad(dOut, t, b, H)
		for j := 0; j < H; j++ {
			d := dh[j]
			if relu {
				if h[j] <= 0 {
					d = 0
				}
			} else {
				d *= 1 - h[j]*h[j]
			}
			dg[j] = d
			dh[j] = 0
		}
	}
}
