"""Hugging Face transformers backend: `HFPolicy`, a `Policy` over any causal LM.

Importing this package is light; torch, transformers and peft are imported when a policy is built.

The parts, one object each:

- `runtime.HFRuntime`: the loaded model and tokenizer (device, dtype, chat template, LoRA
  adapters, loaded and swapped with peft), prompt encoding, one forward pass. `tune_cpu_malloc`
  keeps freed memory in the process on a CPU.
- `prefix.PrefixCache`: reading prompts into a KV cache with the **prefix store**
  (`openberry.models.kv_cache`), kept across calls: tree search re-sends each node's path, and
  a value or judge prompt repeats text an earlier call read. A prompt starts from the longest
  prefix of it in the store; with ``share_prefixes=True`` prefixes that several prompts of one
  call share (at least ``min_shared_prefix`` tokens: sibling nodes share their whole path) are
  read once first; a call's few prompts whose unknown rest is much longer than the others' are
  read in a pass of their own. Every prompt read is added to the store, and so is every
  generated row (prompt and the tokens fed back): tree search reads what it wrote (a value
  prompt is the policy prompt plus the new thought, a refine prompt the review prompt plus the
  review). Outputs equal those without re-use up to float rounding (tested within 1e-4 on
  logprobs, 1e-5 on probabilities). `HFPolicy.reset_prefix_cache` empties the store; the
  search engine calls it before each search, so a search never depends on what ran before it.
  Models with sliding-window or other non-full-attention layers keep transformers' cache and run
  every prompt whole. Speed of the store: BENCHMARKS.md, "Speed of the batched engine".
- `decode.Decoder`: the batched decode loop of `HFPolicy.generate` (our own, not
  ``model.generate``): all prompts x n rows in one batch, each prompt read once and its KV cache
  copied to its n samples, finished rows dropped from the batch, stop strings checked on the
  decoded tail of a row only when the new token could end one.
- `prefill`: `HFPolicy.score` (one left-padded pass per batch over prompt + completion, keeping
  only the logits of the last positions) and `HFPolicy.next_token_probs` (one pass, softmax at
  the last position).
- `logprobs`: ``prompt_logprobs`` and ``top_logprobs``, which `berry serve` needs beyond the
  `Policy` interface.
- `policy.HFPolicy`: composes them and implements `Policy`.
- `reward.HFRewardModel`: not a policy: a process reward model with a token or sequence
  classification head (`openberry.models.base.RewardModel`), for the ``prm-head`` scorer.

Conventions (where this departs from ``model.generate``):

- Reported logprobs are the model's log p at temperature 1 of the chosen token, from the raw
  logits (before temperature and top-p), matching `Policy.generate`'s contract; sampling itself
  uses the tempered, nucleus-filtered distribution.
- With ``SamplingParams.token_stats``, each generated token (EOS included) also gets the entropy
  and varentropy of that same temperature-1 distribution, computed in float32 over the full
  vocabulary from the log-softmax the logprobs come from, and reduced to two numbers per row at
  each step. Without it nothing extra is computed.
- An EOS token, when generated, is the last entry of ``token_ids``/``logprobs`` (and of the
  entropies/varentropies); its text is not in ``text``. With a stop string the text is cut
  before the stop, and tokens (with their logprobs and stats) are cut to the longest prefix whose
  decoded text is a prefix of the returned text (a token straddling the stop is dropped).
- Reproducibility: with ``seed`` set, sampling draws from a ``torch.Generator`` seeded with it, so
  the same seed, prompts, settings, batch and device give the same samples; temperature 0 is
  argmax and deterministic. A sample does depend on its batch (rows share the generator).
- Prompt/completion boundary in `score`: the context is the prompt's own tokenisation (as in
  `generate`); the completion tokens are the tokens of ``prompt + completion`` after the prompt's
  tokens when those are a prefix of the joint tokenisation (the usual case), otherwise the
  completion tokenised alone. For text that `generate` produced, this gives back the generated
  tokens whenever the tokenizer round-trips them.
- The chat template is applied (as one user message, with the generation prompt) only when
  ``use_chat_template=True`` and the tokenizer has one; otherwise prompts are encoded as they are
  with the tokenizer's default special tokens (e.g. BOS).
"""

from openberry.models.hf.policy import HFPolicy
from openberry.models.hf.prefill import PREFILL_ROWS
from openberry.models.hf.prefix import DEFAULT_PREFIX_CACHE_MB
from openberry.models.hf.reward import HFRewardModel
from openberry.models.hf.runtime import HFRuntime, tune_cpu_malloc

__all__ = [
    "DEFAULT_PREFIX_CACHE_MB",
    "PREFILL_ROWS",
    "HFPolicy",
    "HFRewardModel",
    "HFRuntime",
    "tune_cpu_malloc",
]
