"""The GRPO policy's two operations on one prompt's group: sample it, score its tokens.

``sample_group`` draws ``group`` completions of one prompt, prefilling the prompt once and
repeating its key/value cache; ``group_logps`` gives the completions' per-token log-probabilities
with the prompt run once, its cache repeated (the gradient flows back through it, so this is the
per-sequence forward's result and gradient, not an approximation: tests/train checks both, and
the samples for one seed). ``ponder.learning.ssa.grpo`` drives them. Train venv only.
"""

from __future__ import annotations

from typing import Any


def completion_logps(torch: Any, model: Any, ids: Any, mask: Any, width: int) -> Any:
    """Per-token log-probabilities of the last ``width`` tokens of each row of ``ids`` (logits
    computed for those positions only, ``logits_to_keep``)."""
    out = model(input_ids=ids, attention_mask=mask, logits_to_keep=width + 1)
    logits = out.logits[:, :-1, :].float()
    target = ids[:, -width:]
    return torch.log_softmax(logits, dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)


def group_logps(
    torch: Any, model: Any, prompt: Any, comps: Any, comp_mask: Any, *, shared: bool = True
) -> Any:
    """Per-token log-probabilities of ``comps`` (``[G, T]``, right-padded, ``comp_mask``) after
    the one ``prompt`` (``[1, P]``) they share.

    ``shared``: the prompt is run once and its key/value cache repeated for the G completions,
    which attend to it (the gradient flows back through that cache into the prompt positions'
    LoRA layers, so this is the full forward's result and gradient, not an approximation; tests
    check both). The prompt is most of an SSA pair, so this costs about one forward instead of
    G. Not with activation checkpointing, which turns the cache off: ``shared=False`` then runs
    the G full sequences."""
    g, width = comps.shape
    ones = torch.ones(g, prompt.shape[1], dtype=comp_mask.dtype, device=comp_mask.device)
    mask = torch.cat([ones, comp_mask], dim=1)
    if not shared:
        ids = torch.cat([prompt.expand(g, -1), comps], dim=1)
        return completion_logps(torch, model, ids, mask, width)
    first = model(input_ids=prompt, use_cache=True, logits_to_keep=1)
    cache = first.past_key_values
    cache.batch_repeat_interleave(g)
    rest = model(input_ids=comps, attention_mask=mask, past_key_values=cache, use_cache=True)
    logits = torch.cat([first.logits[:, -1:, :].expand(g, 1, -1), rest.logits[:, :-1, :]], dim=1)
    logp = torch.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, comps.unsqueeze(-1)).squeeze(-1)


def sample_group(torch: Any, model: Any, prompt: Any, s: Any, ends: set[int],
                 pad_id: int, *, shared: bool = True) -> Any:  # fmt: skip
    """``s.group`` sampled continuations of ``prompt`` (``[1, P]``): rows of prompt +
    completion, as ``generate`` returns them. ``shared``: the prompt is prefilled once and its
    cache repeated (the same samples for the same seed as ``num_return_sequences``, at one
    prefill instead of G)."""
    kwargs: dict[str, Any] = {
        "do_sample": True,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "top_k": 0,
        "repetition_penalty": 1.0,
        "max_new_tokens": s.max_new_tokens,
        "eos_token_id": sorted(ends),
        "pad_token_id": pad_id,
        "use_cache": True,
    }
    if not shared or prompt.shape[1] < 2:
        return model.generate(
            input_ids=prompt,
            attention_mask=torch.ones_like(prompt),
            num_return_sequences=s.group,
            **kwargs,
        )
    cache = model(input_ids=prompt[:, :-1], use_cache=True).past_key_values
    cache.batch_repeat_interleave(s.group)
    rows = prompt.repeat(s.group, 1)
    return model.generate(
        input_ids=rows, attention_mask=torch.ones_like(rows), past_key_values=cache, **kwargs
    )


def cut_at_end(tokens: list[int], ends: set[int]) -> list[int]:
    """A sampled completion up to and including its first end-of-turn token."""
    for i, t in enumerate(tokens):
        if t in ends:
            return tokens[: i + 1]
    return tokens
