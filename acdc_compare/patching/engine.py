"""Exact edge patching: run a model with any set of edges ablated, many circuits per forward.

Semantics (../shared/REFERENCE.md section 2): each receiver reads
    input_r = ablated_input_r + sum over KEPT edges s->r of (out_s(patched run) - out_s(ablated run)),
so a removed edge carries the ablated sender value and pruning upstream propagates downstream. A cut direct
edge replaces that head's q/k/v vector by its ablated value. The ablated run is the corrupted prompts' run,
a run where every sender outputs zero (biases still flow), or each sender's mean over a reference batch.

The engine runs its own forward on `ModelWeights` (filled from a model by a backend,
`acdc_compare.backends`), with the maths of `acdc_compare.forward`, so it can batch K circuits (K x N sequences) and restart from any stage with the
upstream sender outputs of a cached run. Stages: 2l = attention of layer l, 2l+1 = its MLP, 2L = logits.
"""

from __future__ import annotations

from functools import cached_property

import torch

from acdc_compare import forward
from acdc_compare.allocator import tune_cpu_allocator
from acdc_compare.circuit import Circuit
from acdc_compare.graph import Graph
from acdc_compare.patching.autograd import GradDeltas
from acdc_compare.patching.context import (
    PatchContext,
    PatchingError,
    RunState,
    check_spans,
    kept_matrix,
    parse_ablation,
    receiver_stage,
    scored_positions,
    shared_length,
)
from acdc_compare.patching.deltas import Deltas, GradReference
from acdc_compare.patching.model_math import ModelMath
from acdc_compare.patching.stage_math import direct as _direct
from acdc_compare.patching.stage_math import opt as _opt
from acdc_compare.spans import PromptSpans
from acdc_compare.types import Ablation
from acdc_compare.weights import ModelWeights


class Patcher(ModelMath):
    """Runs circuits of one graph on one model's weights. From a loaded model:
    `acdc_compare.backends.make_patcher(model)`."""

    def __init__(self, weights: ModelWeights, graph: Graph) -> None:
        cfg = weights.config
        if (graph.n_layers, graph.n_heads, graph.n_kv_heads) != (cfg.n_layers, cfg.n_heads, cfg.kv_heads):
            raise PatchingError(f"{graph!r} does not match the model's shape ({cfg.n_layers} layers, "
                                f"{cfg.n_heads} heads, {cfg.kv_heads} key-value heads)")
        if cfg.attn_only:
            raise PatchingError("attention-only models are not supported by the patching engine")
        super().__init__(weights)
        self.graph = graph
        self.n_stages = 2 * cfg.n_layers + 1
        self._w_qkv = torch.cat([weights.W_Q, weights.W_K, weights.W_V], dim=1)  # [L, H + 2G, d, dh]
        self._b_qkv = torch.cat([weights.b_Q, weights.b_K, weights.b_V], dim=1)  # [L, H + 2G, dh]
        self._act = forward.activation(cfg.act_fn)
        # a sparse circuit's receivers read only their kept senders' rows (`Deltas.gather`); on a GPU the
        # dense product is cheap and finding the rows would wait for the device
        self.select_rows = weights.device.type == "cpu"
        if weights.device.type == "cpu":
            tune_cpu_allocator()

    @classmethod
    def from_weights(cls, weights: ModelWeights, include_direct: bool = True) -> "Patcher":
        return cls(weights, Graph.from_model_config(weights.config, include_direct=include_direct))

    def with_graph(self, graph: Graph) -> "Patcher":
        """A patcher of the same weights on another graph of this model's shape (e.g. `graph.with_spans(...)`)."""
        return self if graph == self.graph else Patcher(self.w, graph)

    @cached_property
    def weights_sha256(self) -> str:
        """A digest of the weights (`ModelWeights.digest`), computed once: part of a journal's identity."""
        return self.w.digest()

    # ----- stages -------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return int(self.w.W_E.shape[0])

    def receiver_stage(self, r: int) -> int:
        return receiver_stage(self.graph, r)

    def stage_first_sender(self, stage: int) -> int:
        """Senders before this index are computed before the stage runs."""
        layer, is_mlp = divmod(stage, 2)
        if layer >= self.cfg.n_layers:
            return self.graph.n_senders
        return 1 + layer * self.graph.senders_per_layer + (self.cfg.n_heads if is_mlp else 0)

    # ----- preparing a batch --------------------------------------------------------------------------
    @torch.no_grad()
    def prepare(self, clean: torch.Tensor, ablation: Ablation | str = Ablation.CORRUPTED,
                corrupted: torch.Tensor | None = None, positions: torch.Tensor | None = None,
                reference: torch.Tensor | None = None,
                spans: PromptSpans | torch.Tensor | None = None, skip_shared: bool = True) -> PatchContext:
        """Compute the ablated run for a clean batch [N, P].

        `corrupted` [N, P] is needed for corrupted ablation, `reference` [M, P] for mean ablation (defaults
        to the clean batch). `positions` [N] or [N, Q] are the scored positions (default: the last one).
        `spans` (each position's span index [N, P]) is needed when the graph has spans. With `skip_shared`,
        the leading positions where the clean and corrupted prompts agree are not run (`PatchContext`):
        templated prompts share most of their tokens, and every circuit's run is the ablated one there.
        """
        ablation = parse_ablation(ablation)
        clean = self._check_tokens(clean, "clean")
        n, p = clean.shape
        positions = scored_positions(positions, n, p, self.device)
        span_index = check_spans(self.graph, spans, n, p, self.device)
        if ablation is Ablation.CORRUPTED:
            if corrupted is None:
                raise PatchingError("corrupted ablation needs the corrupted prompts (corrupted=...)")
            corrupted = self._check_tokens(corrupted, "corrupted")
            if corrupted.shape != clean.shape:
                raise PatchingError(f"clean {tuple(clean.shape)} and corrupted {tuple(corrupted.shape)} batches "
                                    "differ in shape: each corrupted prompt must have its clean prompt's length")
            corr_out = self.sender_outputs(corrupted)
            if skip_shared:
                return self._shared_context(clean, positions, corr_out, span_index,
                                            shared_length(clean, corrupted, positions))
        elif ablation is Ablation.ZERO:
            corr_out = torch.zeros(self.graph.n_senders, n * p * self.cfg.d_model, device=self.device,
                                   dtype=self.dtype)
        else:
            ref = clean if reference is None else self._check_tokens(reference, "reference")
            if ref.shape[1] != p:
                raise PatchingError(f"mean-ablation reference prompts have length {ref.shape[1]}, clean ones {p}")
            outs = self.sender_outputs(ref).view(self.graph.n_senders, ref.shape[0], p * self.cfg.d_model)
            corr_out = outs.mean(1, keepdim=True).expand(-1, n, -1).reshape(self.graph.n_senders, -1)
        return self._context(clean, positions, ablation, corr_out.contiguous(), span_index)

    def _shared_context(self, clean: torch.Tensor, positions: torch.Tensor, corr_out: torch.Tensor,
                        spans: torch.Tensor | None, m: int) -> PatchContext:
        """The corrupted ablation's context without its first `m` positions (shared by the clean and corrupted
        prompts), holding their ablated keys and values instead."""
        if m == 0:
            return self._context(clean, positions, Ablation.CORRUPTED, corr_out, spans)
        n, p = clean.shape
        S = corr_out.shape[0]
        by_position = corr_out.view(S, n, p, self.cfg.d_model)
        head = self._context(clean[:, :m], positions.clamp(max=m - 1), Ablation.CORRUPTED,
                             by_position[:, :, :m].reshape(S, -1))
        keys = []
        for layer in range(self.cfg.n_layers):
            k = head.corr_k[layer]
            if self.w.k_norm_w is not None:
                k = forward.qk_norm(k, self.w.k_norm_w[layer], self.cfg.eps, head_dim=0)
            keys.append(forward.apply_rotary(k, *self._rotary(layer, p, 0, m))
                        if self.cfg.positional == "rotary" else k)
        return self._context(clean, positions, Ablation.CORRUPTED, by_position[:, :, m:].reshape(S, -1),
                             None if spans is None else spans[:, m:], m, torch.stack(keys), head.corr_v)

    def _context(self, clean: torch.Tensor, positions: torch.Tensor, ablation: Ablation,
                 corr_out: torch.Tensor, spans: torch.Tensor | None = None, n_shared: int = 0,
                 shared_k: torch.Tensor | None = None, shared_v: torch.Tensor | None = None) -> PatchContext:
        """The context of an ablated run whose sender outputs `corr_out` cover positions n_shared.. only."""
        cfg, g = self.cfg, self.graph
        n = clean.shape[0]
        p = clean.shape[1] - n_shared
        L, d = cfg.n_layers, cfg.d_model
        b_O = self._resid_attn_bias().reshape(L, 1, d).expand(L, n * p, d).reshape(L, -1)
        per_layer = corr_out[1:].view(L, g.senders_per_layer, -1)
        attn_sum = per_layer[:, : cfg.n_heads].sum(1)
        mlp_out = per_layer[:, cfg.n_heads]
        corr_in_attn = torch.empty(L, n * p * d, device=self.device, dtype=self.dtype)
        corr_in_mlp = torch.empty_like(corr_in_attn)
        resid = corr_out[0].clone()
        for layer in range(L):
            corr_in_attn[layer] = resid
            mid = resid + attn_sum[layer] + b_O[layer]
            corr_in_mlp[layer] = resid if cfg.parallel_attn_mlp else mid
            resid = mid + mlp_out[layer]
        final = resid.view(n, p, d)[torch.arange(n, device=self.device)[:, None], positions - n_shared]
        x = corr_in_attn.view(L, 1, n, p, d)
        ln = x if self.w.ln1_w is None else self._norm(x, self.w.ln1_w[:, None, None, None],
                                                       _opt(self.w.ln1_b, (L, 1, 1, 1, d)))
        corr_q = torch.einsum("lnpd,lhde->lhnpe", ln[:, 0], self.w.W_Q) + self.w.b_Q[:, :, None, None]
        corr_k = torch.einsum("lnpd,lhde->lhnpe", ln[:, 0], self.w.W_K) + self.w.b_K[:, :, None, None]
        corr_v = torch.einsum("lnpd,lhde->lhnpe", ln[:, 0], self.w.W_V) + self.w.b_V[:, :, None, None]
        embed = self._embed(clean)[:, n_shared:].reshape(-1)
        return PatchContext(tokens=clean, positions=positions, ablation=ablation, corr_out=corr_out,
                            corr_in_attn=corr_in_attn, corr_in_mlp=corr_in_mlp, corr_in_final=final,
                            corr_q=corr_q, corr_k=corr_k, corr_v=corr_v, input_delta=embed - corr_out[0],
                            spans=spans, n_shared=n_shared, shared_k=shared_k, shared_v=shared_v)

    @torch.no_grad()
    def sender_outputs(self, tokens: torch.Tensor) -> torch.Tensor:
        """Every sender's output on an unpatched run: [S, N*P*d]."""
        tokens = self._check_tokens(tokens, "tokens")
        n, p = tokens.shape
        positions = torch.full((n, 1), p - 1, dtype=torch.long, device=self.device)
        # every ablated output is zero: one zero row broadcast, not a zero buffer as large as the outputs
        zero = torch.zeros(1, n * p * self.cfg.d_model, device=self.device, dtype=self.dtype)
        ctx = self._context(tokens, positions, Ablation.ZERO, zero.expand(self.graph.n_senders, -1))
        full = torch.ones(1, self.graph.n_edges, dtype=torch.bool, device=self.device)
        _, state = self.run(ctx, full, keep_state=True)
        return state.deltas[0]  # ablated outputs are zero, so deltas are the outputs

    # ----- running circuits ---------------------------------------------------------------------------
    @torch.no_grad()
    def ablated_logits(self, ctx: PatchContext) -> torch.Tensor:
        """The empty circuit's logits [1, N, Q, vocab], read off the ablated run kept in `ctx` (every receiver
        reads its ablated input, so only the final norm and unembedding remain): no forward."""
        n, q, d = ctx.n_prompts, ctx.positions.shape[1], self.cfg.d_model
        return self._unembed(ctx.corr_in_final.reshape(n * q, d)).view(1, n, q, -1)

    def logits(self, ctx: PatchContext, circuits: Circuit | list[Circuit] | torch.Tensor) -> torch.Tensor:
        """Patched logits [K, N, Q, vocab] at the scored positions, one row per circuit."""
        logits, _ = self.run(ctx, kept_matrix(self.graph, circuits))
        return logits

    @torch.no_grad()
    def run(self, ctx: PatchContext, kept: torch.Tensor, start_stage: int = 0, base: RunState | None = None,
            keep_state: bool = False) -> tuple[torch.Tensor, RunState | None]:
        """Run K circuits (`kept` [K, n_edges], bool or float) from `start_stage`.

        With start_stage > 0, `base` must hold a run whose circuits agree with these on every receiver
        before that stage (its sender outputs up to the stage are reused). Returns logits [K, N, Q, V] and,
        with keep_state, the sender deltas for later restarts.
        """
        return self._run(ctx, kept, start_stage, base, keep_state)

    def run_grad(self, ctx: PatchContext, kept: torch.Tensor, *, reference: GradReference | None = None,
                 input_scale: torch.Tensor | None = None) -> torch.Tensor:
        """Like `run` but differentiable in `kept` (float [K, n_edges]), for attribution methods.

        `input_scale` [K] multiplies the input sender's delta per circuit (the embedding moves from the
        ablated towards the clean one: integrated gradients over the input); `reference` swaps the factors
        that mask gradients multiply (see `GradReference`). Neither changes what `run` would compute for the
        same inputs."""
        with torch.enable_grad():
            logits, _ = self._run(ctx, kept, 0, None, False, reference=reference, input_scale=input_scale)
        return logits

    @torch.no_grad()
    def grad_reference(self, ctx: PatchContext) -> GradReference:
        """The clean run's activation differences (clean minus ablated) for `run_grad(reference=...)`."""
        full = torch.ones(1, self.graph.n_edges, device=self.device, dtype=self.dtype)
        with torch.enable_grad():  # nothing requires grad: this is the differentiable path's forward, which
            _, state = self._run(ctx, full, 0, None, True)  # gathers a uniform mask's receiver input only once
        deltas = state.deltas[0]
        clean = self._context(ctx.tokens, ctx.positions, ctx.ablation, ctx.corr_out + deltas, ctx.spans,
                              ctx.n_shared, ctx.shared_k, ctx.shared_v)
        return GradReference(deltas=deltas, dq=clean.corr_q - ctx.corr_q, dk=clean.corr_k - ctx.corr_k,
                             dv=clean.corr_v - ctx.corr_v)

    def _run(self, ctx: PatchContext, kept: torch.Tensor, start_stage: int, base: RunState | None,
             keep_state: bool, reference: GradReference | None = None,
             input_scale: torch.Tensor | None = None) -> tuple[torch.Tensor, RunState | None]:
        g, cfg = self.graph, self.cfg
        kept = kept.to(self.device)
        if kept.dim() == 1:
            kept = kept[None]
        if kept.shape[-1] != g.n_edges:
            raise PatchingError(f"circuit mask has {kept.shape[-1]} edges, the graph has {g.n_edges}")
        resid_mask, direct_mask = g.masks(kept.to(self.dtype))
        K = kept.shape[0]
        n, p, d = ctx.n_prompts, ctx.n_run, cfg.d_model
        x_size = n * p * d
        s0 = self.stage_first_sender(start_stage) if start_stage > 0 else 0
        if start_stage > 0:
            if base is None:
                raise PatchingError("a restarted run needs the base run's state")
            prefix = base.deltas[:, :s0]
        else:
            prefix = None
        if torch.is_grad_enabled():
            deltas: Deltas = GradDeltas(K, g.n_senders, x_size, self.device, self.dtype, reference)
        else:
            deltas = Deltas(prefix, torch.empty(K, g.n_senders - s0, x_size, device=self.device,
                                                 dtype=self.dtype), s0, select_rows=self.select_rows)
        if start_stage == 0:
            if input_scale is None:
                deltas.write(slice(0, 1), ctx.input_delta.expand(K, 1, -1))
            else:
                scale = torch.as_tensor(input_scale, device=self.device, dtype=self.dtype).reshape(-1, 1, 1)
                if scale.shape[0] not in (1, K):
                    raise PatchingError(f"input_scale has {scale.shape[0]} entries for {K} circuits")
                deltas.write(slice(0, 1), (scale * ctx.input_delta.view(1, 1, -1)).expand(K, 1, -1))
        unread = self._unread_stages(resid_mask, start_stage) if not (keep_state or torch.is_grad_enabled()) else ()
        for stage in range(start_stage, self.n_stages - 1):
            layer, is_mlp = divmod(stage, 2)
            if stage in unread:
                deltas.write(self.stage_senders(stage), torch.zeros((), device=self.device, dtype=self.dtype))
            elif is_mlp:
                self._mlp_stage(ctx, layer, resid_mask, deltas, K)
            else:
                rope = self._rotary(layer, ctx.seq_len, ctx.n_shared) if cfg.positional == "rotary" else None
                self._attn_stage(ctx, layer, resid_mask, direct_mask, deltas, K, rope)
        logits = self._final_stage(ctx, resid_mask, deltas, K)
        state = RunState(deltas.materialize()) if keep_state else None
        return logits, state

    def stage_senders(self, stage: int) -> slice:
        """The senders a stage computes: its layer's heads, or its MLP (none for the logits stage)."""
        first = self.stage_first_sender(stage)
        layer, is_mlp = divmod(stage, 2)
        return slice(first, first + (0 if layer >= self.cfg.n_layers else 1 if is_mlp else self.cfg.n_heads))

    def _unread_stages(self, resid_mask: torch.Tensor, start_stage: int) -> set[int]:
        """Stages from `start_stage` whose senders no circuit reads (sparse circuits on CPU, `select_rows`):
        a run that keeps no state for restarts skips them and stores zero deltas."""
        if not self.select_rows:
            return set()
        read = resid_mask.flatten(2).any(2).any(0).tolist()
        return {stage for stage in range(start_stage, self.n_stages - 1)
                if not any(read[self.stage_senders(stage)])}

    def _attn_stage(self, ctx: PatchContext, layer: int, resid_mask: torch.Tensor, direct_mask: torch.Tensor,
                    deltas: Deltas, K: int, rope: tuple[torch.Tensor, torch.Tensor] | None) -> None:
        g, cfg, w = self.graph, self.cfg, self.w
        H, G, dh, d = cfg.n_heads, cfg.kv_heads, cfg.d_head, cfg.d_model
        n, p = ctx.n_prompts, ctx.n_run
        recs = g.layer_receivers(layer)
        r0, r_attn = recs.start, H + 2 * G
        n_up = 1 + layer * g.senders_per_layer
        inp = self._gather(ctx, deltas, resid_mask[:, :n_up, r0:r0 + r_attn], ctx.corr_in_attn[layer])
        inp = inp.view(K, r_attn, n, p, d)
        ln = inp if w.ln1_w is None else self._norm(inp, w.ln1_w[layer], _opt(w.ln1_b, (layer,)))
        # one projection for all q/k/v receivers: slicing its small output (not the normed inputs) keeps the
        # differentiable run from materialising three zero-padded input gradients per layer
        qkv = torch.einsum("krnpd,rde->krnpe", ln, self._w_qkv[layer]) + self._b_qkv[layer][:, None, None]
        q, k, v = qkv[:, :H], qkv[:, H:H + G], qkv[:, H + G:]
        if g.config.include_direct:
            dm = self._direct_mask(ctx, direct_mask[:, r0:r0 + r_attn])
            ref = deltas.reference
            q = _direct(ctx.corr_q[layer], q, dm[:, :H], None if ref is None else ref.dq[layer])
            k = _direct(ctx.corr_k[layer], k, dm[:, H:H + G], None if ref is None else ref.dk[layer])
            v = _direct(ctx.corr_v[layer], v, dm[:, H + G:], None if ref is None else ref.dv[layer])
        if w.q_norm_w is not None:
            q = forward.qk_norm(q, w.q_norm_w[layer], cfg.eps, head_dim=1)
        if w.k_norm_w is not None:
            k = forward.qk_norm(k, w.k_norm_w[layer], cfg.eps, head_dim=1)
        if rope is not None:
            q, k = forward.apply_rotary(q, *rope), forward.apply_rotary(k, *rope)
        if ctx.shared_k is not None and ctx.shared_v is not None:
            k = torch.cat([ctx.shared_k[layer].expand(K, -1, -1, -1, -1), k], dim=3)
            v = torch.cat([ctx.shared_v[layer].expand(K, -1, -1, -1, -1), v], dim=3)
        # [K, h, N, P, dh] -> [K, N, h, P, dh] for attention
        z = forward.causal_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                     cfg.attention_scale(layer), self._visible(layer, ctx.n_shared, ctx.seq_len),
                                     cfg.attn_softcap)
        result = torch.einsum("knhpe,hed->khnpd", z, w.W_O[layer])
        if w.ln1_post_w is not None:
            result = forward.post_norm_shares(result, w.b_O[layer], w.ln1_post_w[layer], cfg.eps, part_dim=1)
        heads = slice(n_up, n_up + H)
        deltas.write_diff(heads, result.reshape(K, H, -1), ctx.corr_out[heads])

    def _mlp_stage(self, ctx: PatchContext, layer: int, resid_mask: torch.Tensor, deltas: Deltas,
                   K: int) -> None:
        g, w = self.graph, self.w
        r = g.mlp_receiver(layer)
        n_up = g.receivers[r].n_upstream
        inp = self._gather(ctx, deltas, resid_mask[:, :n_up, r:r + 1], ctx.corr_in_mlp[layer])[:, 0]
        inp = inp.view(K, ctx.n_prompts * ctx.n_run, self.cfg.d_model)
        ln = inp if w.ln2_w is None else self._norm(inp, w.ln2_w[layer], _opt(w.ln2_b, (layer,)))
        out = forward.mlp(ln, w.W_in[layer], w.b_in[layer], None if w.W_gate is None else w.W_gate[layer],
                          w.W_out[layer], w.b_out[layer], self._act,
                          None if w.b_gate is None else w.b_gate[layer])
        if w.ln2_post_w is not None:
            out = forward.norm(out, w.ln2_post_w[layer], None, "RMS", self.cfg.eps)
        s = g.mlp_sender(layer)
        deltas.write_diff(slice(s, s + 1), out.reshape(K, 1, -1), ctx.corr_out[s:s + 1])

    def _final_stage(self, ctx: PatchContext, resid_mask: torch.Tensor, deltas: Deltas, K: int) -> torch.Tensor:
        g, d = self.graph, self.cfg.d_model
        n, p = ctx.n_prompts, ctx.n_run
        q = ctx.positions.shape[1]
        flat_pos = (torch.arange(n, device=self.device)[:, None] * p + ctx.run_positions).reshape(-1)  # [N*Q]
        mask = resid_mask[:, :, g.logits_receiver]  # [K, S], or [K, S, J] on a span graph
        if g.has_spans:
            mask = mask[..., 0] if self._uniform(mask) else mask[:, :, self._span_index(ctx)[flat_pos]]
        x = deltas.gather_positions(mask, flat_pos, p, d)  # [K, N*Q, d]
        x = x + ctx.corr_in_final.reshape(n * q, d)
        return self._unembed(x).view(K, n, q, -1)

    # ----- span edges ---------------------------------------------------------------------------------
    def _gather(self, ctx: PatchContext, deltas: Deltas, mask: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Receiver inputs [K, R, N*P*d]: bias + kept sender deltas. On a span graph (mask [K, S, R, J]) each
        position reads the mask of its span: the inputs of all J spans are gathered as R*J receivers and each
        position's is picked, so a differentiable run gives each span edge the gradient of its positions only."""
        if not self.graph.has_spans:
            return deltas.gather(mask, bias)
        if self._uniform(mask):
            return deltas.gather(mask[..., 0], bias)
        K, S, R, J = mask.shape
        span = self._span_index(ctx)  # [N*P]
        every = deltas.gather(mask.reshape(K, S, R * J), bias).view(K, R, J, span.shape[0], self.cfg.d_model)
        return every[:, :, span, torch.arange(span.shape[0], device=self.device)].reshape(K, R, -1)

    def _direct_mask(self, ctx: PatchContext, mask: torch.Tensor) -> torch.Tensor:
        """Direct-edge masks [K, R] (or [K, R, J] on a span graph) as [K, R, N or 1, P or 1, 1]."""
        if not self.graph.has_spans:
            return mask[:, :, None, None, None]
        if self._uniform(mask):
            return mask[..., 0, None, None, None]
        n, p = ctx.n_prompts, ctx.n_run
        return mask[:, :, self._span_index(ctx)].view(*mask.shape[:2], n, p, 1)

    @staticmethod
    def _uniform(mask: torch.Tensor) -> bool:
        """Whether a span mask [..., J] is the same for every span (and needs no gradient per span): it then
        acts as one span-free edge, with the span-free run's cost and its exact numbers."""
        return not mask.requires_grad and bool((mask == mask[..., :1]).all())

    @staticmethod
    def _span_index(ctx: PatchContext) -> torch.Tensor:
        if ctx.spans is None:
            raise PatchingError("this circuit treats spans differently, but the batch has no span indices: "
                                "prepare it with spans=...")
        return ctx.spans.reshape(-1)
