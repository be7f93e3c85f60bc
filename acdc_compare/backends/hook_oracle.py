"""Straightforward reference implementations through a bridge's own hooks, written independently of the
patching engine: the oracle the tests and benchmarks check the engine against.

`hook_patched_logits` patches a TransformerLens bridge with plain hooks (one full forward per circuit);
`oracle_acdc` is greedy ACDC with one such forward per tested edge, its order written out by names.

A sender's output is what it writes to the residual stream. Behind a post-norm (Gemma 2/3, OLMo-2) that is
the MLP's normed output, and for a head its share of the normed attention output: (its `hook_result` plus
1/H of the output bias) times the norm's own gain at that position (`ln1_post.hook_out / ln1_post.hook_in`,
taken from the same run), so the shares add up to what the layer writes.
"""

from __future__ import annotations

import math
import re

import torch

from acdc_compare.graph import Graph


def has_post_norms(model) -> bool:
    """Whether the blocks have post-norms (Gemma 2/3, OLMo-2): their senders are the normed outputs."""
    return hasattr(model.blocks[0], "ln1_post")


def mlp_sender_hook(model, layer: int) -> str:
    return f"blocks.{layer}.ln2_post.hook_out" if has_post_norms(model) else f"blocks.{layer}.mlp.hook_out"


def post_norm_hooks(model, L: int) -> list[str]:
    if not has_post_norms(model):
        return []
    return [f"blocks.{layer}.ln1_post.hook_{x}" for layer in range(L) for x in ("in", "out")]


def sender_hooks(model, L: int) -> list[str]:
    """Hooks whose values are (or, for heads behind a post-norm, make) the senders' outputs; zeroed in a
    zero-ablated run."""
    names = ["blocks.0.hook_in"]
    for layer in range(L):
        names += [f"blocks.{layer}.attn.hook_result", mlp_sender_hook(model, layer)]
        if has_post_norms(model):
            names.append(f"blocks.{layer}.ln1_post.hook_out")
    return names


def head_outputs(result: torch.Tensor, norm_in: torch.Tensor | None,
                 norm_out: torch.Tensor | None) -> torch.Tensor:
    """Heads' outputs [N, P, H, d] as written to the residual: `hook_result`, or behind a post-norm each
    head's share of it (the module docstring)."""
    if norm_in is None:
        return result
    n_heads = result.shape[2]
    bias = norm_in - result.sum(2)
    gain = torch.where(norm_in == 0, torch.zeros_like(norm_in), norm_out / norm_in)
    return (result + (bias / n_heads)[:, :, None]) * gain[:, :, None]


def receiver_hooks(L: int) -> list[str]:
    names = []
    for layer in range(L):
        names += [f"blocks.{layer}.attn.hook_q_input", f"blocks.{layer}.attn.hook_k_input",
                  f"blocks.{layer}.attn.hook_v_input", f"blocks.{layer}.hook_mlp_in"]
    return names + ["ln_final.hook_in"]


def qkv_hooks(L: int) -> list[str]:
    return [f"blocks.{layer}.attn.{x}.hook_out" for layer in range(L) for x in "qkv"]


def sender_list(model, cache: dict[str, torch.Tensor], graph: Graph) -> list[torch.Tensor]:
    """Outputs [N, P, d] of every sender, in the graph's sender order, from a hook cache."""
    out = [cache["blocks.0.hook_in"]]
    for layer in range(graph.n_layers):
        res = head_outputs(cache[f"blocks.{layer}.attn.hook_result"],
                            cache.get(f"blocks.{layer}.ln1_post.hook_in"),
                            cache.get(f"blocks.{layer}.ln1_post.hook_out"))
        out += [res[:, :, h] for h in range(graph.n_heads)]
        out.append(cache[mlp_sender_hook(model, layer)])
    return out


@torch.no_grad()
def ablated_cache(model, graph: Graph, corrupted: torch.Tensor | None, length: int = 1) -> dict[str, torch.Tensor]:
    """Sender outputs, receiver inputs and q/k/v of the ablated run (corrupted prompts, or all senders zero,
    on `length` positions)."""
    L = graph.n_layers
    cache: dict[str, torch.Tensor] = {}
    zero = corrupted is None

    senders = set(sender_hooks(model, L))

    def store(t, hook):
        if zero and hook.name in senders:
            t = torch.zeros_like(t)
        cache[hook.name] = t.clone()
        return t

    tokens = corrupted if corrupted is not None else torch.zeros(1, length, dtype=torch.long, device=model.W_E.device)
    names = set(sender_hooks(model, L) + post_norm_hooks(model, L) + receiver_hooks(L) + qkv_hooks(L))
    model.run_with_hooks(tokens, fwd_hooks=[(lambda n: n in names, store)])
    return cache


@torch.no_grad()
def hook_patched_logits(model, graph: Graph, clean: torch.Tensor, kept: torch.Tensor,
                        corrupted: torch.Tensor | None = None, zero_cache: dict | None = None,
                        spans: torch.Tensor | None = None) -> torch.Tensor:
    """Logits [N, P, V] with removed edges carrying the ablated sender value (reference semantics).

    On a span graph `spans` [N, P] gives each position's span index, and edge `NAME@SPAN` is kept or removed
    at the receiver-input positions of that span only (a k/v input's positions are the keys' positions)."""
    L, H, G = graph.n_layers, graph.n_heads, graph.n_kv_heads
    if graph.has_spans and spans is None:
        raise ValueError(f"{graph!r} has spans: pass spans=LongTensor[N, P] of span indices")
    corr = zero_cache if zero_cache is not None else ablated_cache(model, graph, corrupted)
    corr_senders = sender_list(model, corr, graph)
    current: dict[int, torch.Tensor] = {}
    spl = graph.senders_per_layer
    post = has_post_norms(model)
    raw: dict[str, torch.Tensor] = {}

    def set_heads(layer: int, outputs: torch.Tensor) -> None:
        for h in range(H):
            current[1 + layer * spl + h] = outputs[:, :, h].clone()

    def on_sender(t, hook):
        name = hook.name
        layer = int(name.split(".")[1])
        if name == "blocks.0.hook_in":
            current[0] = t.clone()
        elif name.endswith("attn.hook_result"):
            raw["result"] = t.clone()
            if not post:
                set_heads(layer, t)
        elif name.endswith("ln1_post.hook_in"):
            raw["in"] = t.clone()
        elif name.endswith("ln1_post.hook_out"):
            set_heads(layer, head_outputs(raw["result"], raw["in"], t))
        else:
            current[1 + layer * spl + H] = t.clone()
        return t

    def patched_input(r: int, like: torch.Tensor) -> torch.Tensor:
        name = graph.receiver_names[r]
        x = _ablated_input(corr, name).expand_as(like).clone()
        for s in range(graph.receivers[r].n_upstream):
            on = _kept_at(graph, kept, clean, spans, f"{graph.sender_names[s]}->{name}")
            x = x + torch.where(on, current[s] - corr_senders[s], torch.zeros_like(x))
        return x

    def on_receiver(t, hook):
        name = hook.name
        if name == "ln_final.hook_in":
            return patched_input(graph.logits_receiver, t)
        layer = int(name.split(".")[1])
        if name.endswith("hook_mlp_in"):
            return patched_input(graph.mlp_receiver(layer), t)
        kind = name.split("hook_")[1][0]
        out = t.clone()
        count = H if kind == "q" else G
        for h in range(count):
            r = {"q": graph.q_receiver, "k": graph.k_receiver, "v": graph.v_receiver}[kind](layer, h)
            out[:, :, h] = patched_input(r, t[:, :, h])
        return out

    def on_qkv(t, hook):
        if not graph.config.include_direct:
            return t
        parts = hook.name.split(".")
        layer, kind = int(parts[1]), parts[3]
        out = t.clone()
        for h in range(t.shape[2]):
            r = {"q": graph.q_receiver, "k": graph.k_receiver, "v": graph.v_receiver}[kind](layer, h)
            on = _kept_at(graph, kept, clean, spans, graph.receiver_names[r])
            out[:, :, h] = torch.where(on, t[:, :, h], corr[hook.name][:, :, h].expand_as(t[:, :, h]))
        return out

    sender_names = list(dict.fromkeys(sender_hooks(model, L) + post_norm_hooks(model, L)))
    hooks = [(n, on_sender) for n in sender_names] + [(n, on_receiver) for n in receiver_hooks(L)]
    hooks += [(n, on_qkv) for n in qkv_hooks(L)]
    return model.run_with_hooks(clean, fwd_hooks=hooks)


def _kept_at(graph: Graph, kept: torch.Tensor, clean: torch.Tensor, spans: torch.Tensor | None,
             edge: str) -> torch.Tensor:
    """Whether `edge` (a base edge's name) is kept, per position [N, P, 1] of `clean`."""
    if not graph.has_spans:
        return torch.full((*clean.shape, 1), bool(kept[graph.edge_index(edge)]), device=clean.device)
    out = torch.zeros((*clean.shape, 1), dtype=torch.bool, device=clean.device)
    for j, span in enumerate(graph.spans):
        if kept[graph.edge_index(f"{edge}@{span}")]:
            out[spans == j] = True
    return out


def _ablated_input(corr: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """Receiver `name`'s input in the ablated run, from its hook cache `corr`."""
    if name == "logits":
        return corr["ln_final.hook_in"]
    if name.startswith("m"):
        return corr[f"blocks.{name[1:]}.hook_mlp_in"]
    layer, _, head, kind = _parse_attn_receiver(name)
    return corr[f"blocks.{layer}.attn.hook_{kind}_input"][:, :, head]


def _parse_attn_receiver(name: str) -> tuple[int, str, int, str]:
    """(layer, 'h' or 'kv', head index, 'q'/'k'/'v') of an attention receiver name spelled out by hand:
    `a3.h5<q>`, `a3.h5<k>` (no GQA) or `a3.kv1<k>` (a key-value head of a grouped model)."""
    match = re.fullmatch(r"a(\d+)\.(h|kv)(\d+)<([qkv])>", name)
    if match is None:
        raise ValueError(f"{name!r} is not an attention receiver name")
    layer, unit, head, kind = match.groups()
    return int(layer), unit, int(head), kind


def oracle_order(graph: Graph) -> list[tuple[str, list[str]]]:
    """(receiver-step name, edge names) in the reference order, spelled out by names; on a span graph each
    edge's span edges follow each other in the graph's span order."""
    L, H, G = graph.n_layers, graph.n_heads, graph.n_kv_heads
    senders_desc = list(reversed(graph.sender_names))

    def per_span(names: list[str]) -> list[str]:
        return [f"{n}@{span}" for n in names for span in graph.spans] if graph.has_spans else names

    def upstream(receiver: str) -> list[str]:
        r = graph.receiver_index(receiver)
        allowed = set(graph.sender_names[: graph.receivers[r].n_upstream])
        return per_span([f"{s}->{receiver}" for s in senders_desc if s in allowed])

    steps = [("logits", upstream("logits"))]
    for layer in reversed(range(L)):
        steps.append((f"m{layer}", upstream(f"m{layer}")))
        kv = "kv" if G < H else "h"
        attn = [f"a{layer}.{kv}{h}<{x}>" for x in "vk" for h in reversed(range(G))]
        attn += [f"a{layer}.h{h}<q>" for h in reversed(range(H))]
        if graph.config.include_direct:
            steps += [(f"direct {a}", per_span([a])) for a in attn]
        steps += [(a, upstream(a)) for a in attn]
    return steps


def oracle_acdc(evaluate, graph: Graph, threshold: float, *, start: torch.Tensor | None = None,
                fixed: frozenset[str] = frozenset()) -> tuple[torch.Tensor, dict[str, float]]:
    """Greedy ACDC, one full evaluation per tested edge. `evaluate(kept) -> float` (metric to minimise).
    `start`: the circuit it starts from (every edge by default; one outside it is never tested); `fixed`:
    edges kept without a test unless their receiver dies. Returns the kept mask and the score of each tested
    edge."""
    kept = torch.ones(graph.n_edges, dtype=torch.bool) if start is None else start.clone()
    scores: dict[str, float] = {}
    current = evaluate(kept)

    def has_output(node: str) -> bool:
        return any(kept[e] and graph.edge_names[e].startswith(node + "->") for e in range(graph.n_edges))

    def nodes_of(receiver: str) -> list[str]:
        if receiver.startswith("m"):
            return [receiver]
        layer, _, h, kind = _parse_attn_receiver(receiver)
        if kind == "q":
            return [f"a{layer}.h{h}"]
        gs = graph.n_heads // graph.n_kv_heads
        return [f"a{layer}.h{q}" for q in range(h * gs, (h + 1) * gs)]

    for step, edges in oracle_order(graph):
        if step != "logits":
            receiver = step.replace("direct ", "")
            if step.startswith("direct ") or receiver.startswith("m") or not graph.config.include_direct:
                dead = not any(has_output(n) for n in nodes_of(receiver))
            else:
                dead = not any(kept[graph.edge_index(n)] for n in graph.edge_names
                               if n.split("@")[0] == receiver)
            if dead:
                for name in edges:
                    kept[graph.edge_index(name)] = False
                continue
        for name in edges:
            e = graph.edge_index(name)
            if not kept[e] or name in fixed:
                continue
            kept[e] = False
            value = evaluate(kept)
            scores[name] = value - current
            if value - current < threshold:
                current = value
            else:
                kept[e] = True
    assert math.isfinite(current)
    return kept, scores
