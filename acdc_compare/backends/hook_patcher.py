"""The slow exact fallback: edge patching through a bridge's own hooks, for models the fast engine refuses.

Same semantics as the engine and the hook oracle (../shared/REFERENCE.md section 2; senders behind
post-norms as `hook_oracle` defines them): every receiver's hook input is replaced by its ablated value plus
the deltas (patched minus ablated output) of its kept senders, and a cut direct edge puts back the ablated
q/k/v. K circuits run as one bridge forward of K x N sequences. Every run is a full forward (no restart
from a stage) and there are no gradients, so it serves greedy ACDC; EAP, EAP-IG and the hybrid need the
fast engine and are refused with a clear error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch

from acdc_compare.backends import hook_oracle as oracle
from acdc_compare.circuit import Circuit
from acdc_compare.graph import Graph
from acdc_compare.patching import (
    PatchingError,
    PromptBatch,
    RunState,
    kept_matrix,
    parse_ablation,
    receiver_stage,
    scored_positions,
)
from acdc_compare.types import Ablation, ModelConfig
from acdc_compare.weights import tensors_digest


DELTA_BUDGET_BYTES = 2 << 30  # the sender deltas one bridge forward of K circuits holds


class FallbackError(ValueError):
    """What the hook fallback cannot do (gradients), or a model it cannot patch (hooks missing)."""


@dataclass(frozen=True)
class HookContext(PromptBatch):
    """One batch of prompts and its ablated run, as hook values: senders [S, N, P, d]; receiver inputs and
    q/k/v outputs by hook name ([N, P, ...], or [1, P, ...] broadcast over prompts)."""

    corr_senders: torch.Tensor
    corr_hooks: dict[str, torch.Tensor]


def shape_config(model: Any) -> ModelConfig:
    """The model's shape from the bridge's config alone (enough for a `Graph`), for any architecture."""
    cfg = model.cfg
    return ModelConfig(n_layers=cfg.n_layers, n_heads=cfg.n_heads, d_model=cfg.d_model, d_head=cfg.d_head,
                       d_mlp=cfg.d_mlp or 0, d_vocab=cfg.d_vocab_out if (cfg.d_vocab_out or 0) > 0 else cfg.d_vocab,
                       n_kv_heads=cfg.n_key_value_heads or cfg.n_heads, attn_only=bool(cfg.attn_only),
                       parallel_attn_mlp=bool(cfg.parallel_attn_mlp), name=str(cfg.model_name or "unnamed"))


class HookPatcher:
    """Runs circuits of one graph through a bridge's hooks; the subset of `Patcher`'s interface that a
    `Problem` and greedy ACDC use (`prepare`, `logits`, `run`, stages), plus refusals for the gradient
    methods. Build it with `acdc_compare.backends.make_patcher`, which picks it when the engine refuses."""

    def __init__(self, model: Any, include_direct: bool = True, reason: str = "") -> None:
        self.model = model
        self.cfg = shape_config(model)
        if self.cfg.attn_only:
            raise FallbackError(f"model {self.cfg.name!r} is attention-only, which the hook fallback does not patch")
        self.graph = Graph.from_model_config(self.cfg, include_direct=include_direct)
        self.n_stages = 2 * self.cfg.n_layers + 1
        self.reason = reason
        self._post = oracle.has_post_norms(model)
        missing = [n for n in self._hook_names() if n not in model.hook_dict]
        if missing:
            raise FallbackError(f"model {self.cfg.name!r} lacks the hooks edge patching needs ({', '.join(missing[:4])}"
                                f"{' ...' if len(missing) > 4 else ''}); it cannot be patched")

    def with_graph(self, graph: Graph) -> "HookPatcher":
        """Refused for a span graph (the fallback patches whole edges only); the same patcher otherwise."""
        if graph.has_spans:
            self._refuse_spans()
        if graph != self.graph:
            raise PatchingError(f"the hook fallback runs {self.graph!r} only, not {graph!r}")
        return self

    def _refuse_spans(self) -> None:
        raise PatchingError(f"model {self.cfg.name!r} runs on the hook-based fallback, which patches edges over "
                                "all positions only: position-aware (span) circuits need the patching engine; use "
                                "positions='all'")

    def _hook_names(self) -> list[str]:
        L = self.cfg.n_layers
        return list(dict.fromkeys(oracle.sender_hooks(self.model, L) + oracle.post_norm_hooks(self.model, L)
                                  + oracle.receiver_hooks(L) + oracle.qkv_hooks(L)))

    @property
    def device(self) -> torch.device:
        return self.model.W_E.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.W_E.dtype

    @property
    def vocab_size(self) -> int:
        return int(self.model.W_E.shape[0])

    @cached_property
    def weights_sha256(self) -> str:
        """`tensors_digest` of the bridge's state dict: part of a journal's identity."""
        return tensors_digest(sorted(self.model.state_dict().items()))

    def receiver_stage(self, r: int) -> int:
        return receiver_stage(self.graph, r)

    # ----- preparing a batch --------------------------------------------------------------------------
    @torch.no_grad()
    def prepare(self, clean: torch.Tensor, ablation: Ablation | str = Ablation.CORRUPTED,
                corrupted: torch.Tensor | None = None, positions: torch.Tensor | None = None,
                reference: torch.Tensor | None = None, spans: Any = None) -> HookContext:
        """The ablated run's hook values for a clean batch [N, P] (arguments as `Patcher.prepare`; `spans` only
        as None: the fallback has no span edges)."""
        if spans is not None:
            self._refuse_spans()
        ablation = parse_ablation(ablation)
        clean = self._tokens(clean, "clean")
        n, p = clean.shape
        positions = scored_positions(positions, n, p, self.device)
        if ablation is Ablation.CORRUPTED:
            if corrupted is None:
                raise PatchingError("corrupted ablation needs the corrupted prompts (corrupted=...)")
            corrupted = self._tokens(corrupted, "corrupted")
            if corrupted.shape != clean.shape:
                raise PatchingError(f"clean {tuple(clean.shape)} and corrupted {tuple(corrupted.shape)} batches "
                                    "differ in shape: each corrupted prompt must have its clean prompt's length")
            cache = oracle.ablated_cache(self.model, self.graph, corrupted)
            senders = torch.stack(oracle.sender_list(self.model, cache, self.graph))
        elif ablation is Ablation.ZERO:
            cache = oracle.ablated_cache(self.model, self.graph, None, length=p)
            senders = torch.stack(oracle.sender_list(self.model, cache, self.graph))
        else:
            ref = clean if reference is None else self._tokens(reference, "reference")
            if ref.shape[1] != p:
                raise PatchingError(f"mean-ablation reference prompts have length {ref.shape[1]}, clean ones {p}")
            cache, senders = self._mean_cache(ref)
        return HookContext(tokens=clean, positions=positions, ablation=ablation, corr_senders=senders,
                           corr_hooks=cache)

    def _mean_cache(self, reference: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Receiver inputs and senders [S, 1, P, d] averaged over the reference prompts (the residual is a
        sum of senders, so the mean input is the inputs' mean); q/k/v are those of the mean inputs, as the
        engine's."""
        cache = oracle.ablated_cache(self.model, self.graph, reference)
        senders = torch.stack(oracle.sender_list(self.model, cache, self.graph)).mean(1, keepdim=True)
        means = {k: v.mean(0, keepdim=True) for k, v in cache.items()}
        ctx = HookContext(tokens=reference[:1], positions=torch.zeros(1, 1, dtype=torch.long, device=self.device),
                          ablation=Ablation.MEAN, corr_senders=senders, corr_hooks=means)
        nothing = torch.zeros(1, self.graph.n_edges, device=self.device)
        qkv = set(oracle.qkv_hooks(self.cfg.n_layers))
        captured: dict[str, torch.Tensor] = {}

        def grab(t: torch.Tensor, hook: Any) -> None:
            captured[hook.name] = t.clone()

        self._forward(ctx, nothing, extra=[(n, grab) for n in qkv], patch_direct=False)
        return {**means, **captured}, senders

    # ----- running circuits ---------------------------------------------------------------------------
    def logits(self, ctx: HookContext, circuits: Circuit | list[Circuit] | torch.Tensor) -> torch.Tensor:
        """Patched logits [K, N, Q, vocab] at the scored positions, one row per circuit."""
        return self.run(ctx, kept_matrix(self.graph, circuits))[0]

    @torch.no_grad()
    def run(self, ctx: HookContext, kept: torch.Tensor, start_stage: int = 0, base: RunState | None = None,
            keep_state: bool = False, batch: int | None = None) -> tuple[torch.Tensor, RunState | None]:
        """Run K circuits (`kept` [K, n_edges]) as full forwards, `batch` circuits per bridge forward (default:
        as many as keep the sender deltas within `DELTA_BUDGET_BYTES`); `start_stage` and `base` are accepted
        for `Patcher`'s interface and change nothing (no restarts)."""
        kept = kept.to(self.device)
        if kept.dim() == 1:
            kept = kept[None]
        if kept.shape[-1] != self.graph.n_edges:
            raise PatchingError(f"circuit mask has {kept.shape[-1]} edges, the graph has {self.graph.n_edges}")
        batch = batch or self._circuits_per_forward(ctx)
        outs = [self._forward(ctx, kept[i:i + batch]) for i in range(0, kept.shape[0], batch)]
        logits = torch.cat(outs)
        rows = torch.arange(ctx.n_prompts, device=self.device)[:, None]
        return logits[:, rows, ctx.positions], RunState(torch.empty(0)) if keep_state else None

    def _circuits_per_forward(self, ctx: HookContext) -> int:
        per_circuit = self.graph.n_senders * ctx.n_prompts * ctx.seq_len * self.cfg.d_model * self.dtype.itemsize
        return max(1, min(16, DELTA_BUDGET_BYTES // per_circuit))

    def run_grad(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        raise self._no_gradients()

    def grad_reference(self, *args: Any, **kwargs: Any) -> Any:
        raise self._no_gradients()

    def _no_gradients(self) -> FallbackError:
        return FallbackError(
            f"model {self.cfg.name!r} runs on the hook-based fallback ({self.reason or 'the fast engine refused it'}), "
            "which has no gradients: EAP, EAP-IG and the hybrid need the fast engine. Use method 'acdc' (exact)."
        )

    def _forward(self, ctx: HookContext, kept: torch.Tensor, extra: list[tuple[str, Callable]] | None = None,
                 patch_direct: bool = True) -> torch.Tensor:
        """One bridge forward of the K circuits in `kept` [K, n_edges]: logits [K, N, P, V]. `extra` hooks run
        after the patching ones; without `patch_direct` no q/k/v is put back (cut direct edges ignored)."""
        g, cfg = self.graph, self.cfg
        H, spl = cfg.n_heads, g.senders_per_layer
        K, n, p = kept.shape[0], ctx.n_prompts, ctx.seq_len
        resid_mask, direct_mask = g.masks(kept.to(self.dtype))
        deltas = torch.zeros(K, g.n_senders, n, p, cfg.d_model, device=self.device, dtype=self.dtype)
        corr = ctx.corr_senders.to(self.dtype)
        pending: dict[str, torch.Tensor] = {}

        def per_circuit(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(K, n, *t.shape[1:])

        def set_heads(layer: int, out: torch.Tensor) -> None:
            s0 = 1 + layer * spl
            heads = per_circuit(out).movedim(3, 1)  # [K, H, N, P, d]
            deltas[:, s0:s0 + H] = heads - corr[s0:s0 + H]

        def on_sender(t: torch.Tensor, hook: Any) -> torch.Tensor:
            name = hook.name
            layer = int(name.split(".")[1])
            if name == "blocks.0.hook_in":
                deltas[:, 0] = per_circuit(t) - corr[0]
            elif name.endswith("attn.hook_result"):
                pending["result"] = t
                if not self._post:
                    set_heads(layer, t)
            elif name.endswith("ln1_post.hook_in"):
                pending["in"] = t
            elif name.endswith("ln1_post.hook_out"):
                set_heads(layer, oracle.head_outputs(pending["result"], pending["in"], t))
            else:
                s = g.mlp_sender(layer)
                deltas[:, s] = per_circuit(t) - corr[s]
            return t

        def patched(receivers: list[int], base: torch.Tensor) -> torch.Tensor:
            """Inputs [K*N, P, R, d] of receivers (the ablated ones plus kept senders' deltas)."""
            n_up = g.receivers[receivers[0]].n_upstream
            mask = resid_mask[:, :n_up, receivers]  # [K, S', R]
            added = torch.einsum("ksr,ksnpd->knprd", mask, deltas[:, :n_up])
            return (base.to(self.dtype) + added).reshape(K * n, p, len(receivers), cfg.d_model)

        def on_receiver(t: torch.Tensor, hook: Any) -> torch.Tensor:
            name = hook.name
            base = ctx.corr_hooks[name]
            if name == "ln_final.hook_in":
                return patched([g.logits_receiver], base[:, :, None])[:, :, 0]
            layer = int(name.split(".")[1])
            if name.endswith("hook_mlp_in"):
                return patched([g.mlp_receiver(layer)], base[:, :, None])[:, :, 0]
            return patched(self._attn_receivers(name, layer, t.shape[2]), base)

        def on_qkv(t: torch.Tensor, hook: Any) -> torch.Tensor:
            layer = int(hook.name.split(".")[1])
            rs = self._attn_receivers(hook.name, layer, t.shape[2])
            m = direct_mask[:, rs].reshape(K, 1, 1, len(rs), 1).to(t.dtype)
            base = ctx.corr_hooks[hook.name].to(t.dtype)
            return torch.lerp(base[None], per_circuit(t), m).reshape(t.shape)

        L = cfg.n_layers
        senders = list(dict.fromkeys(oracle.sender_hooks(self.model, L) + oracle.post_norm_hooks(self.model, L)))
        hooks = [(n, on_sender) for n in senders] + [(n, on_receiver) for n in oracle.receiver_hooks(L)]
        if patch_direct and g.config.include_direct:
            hooks += [(n, on_qkv) for n in oracle.qkv_hooks(L)]
        tokens = ctx.tokens.repeat(K, 1)
        logits = self.model.run_with_hooks(tokens, fwd_hooks=hooks + (extra or []))
        return logits.view(K, n, p, -1)

    def _attn_receivers(self, hook_name: str, layer: int, count: int) -> list[int]:
        """Receiver indices of a q/k/v hook's heads (q: query heads, k/v: key-value heads)."""
        kind = hook_name.split("hook_")[-1][0] if "_input" in hook_name else hook_name.split(".")[3]
        pick = {"q": self.graph.q_receiver, "k": self.graph.k_receiver, "v": self.graph.v_receiver}[kind]
        return [pick(layer, h) for h in range(count)]

    def _tokens(self, tokens: torch.Tensor, what: str) -> torch.Tensor:
        tokens = torch.as_tensor(tokens)
        if tokens.dim() != 2 or tokens.shape[0] == 0 or tokens.shape[1] == 0:
            raise PatchingError(f"{what} tokens must be a non-empty [N, P] tensor, got {tuple(tokens.shape)}")
        if int(tokens.min()) < 0 or int(tokens.max()) >= self.vocab_size:
            raise PatchingError(f"{what} tokens hold ids outside the model's vocabulary (0..{self.vocab_size - 1})")
        return tokens.long().to(self.device)
