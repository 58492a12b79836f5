"""Resource study: what each method costs to train, per model (issue 7).

Two measurements per model and method, one table (methods as rows, models as column groups,
as in the paper's Table 7 and Xu et al.'s Table VII) and one figure:

(a) a probe at a fixed setting (the paper's Table 7: batch 8, sequence length 512): the
    method built on the model exactly as training builds it (`training.build_run_model`),
    the real optimizer (`training.make_optimizer`) and the run's fast path
    (`fastpath.FastPath`: precision, TF32, fused AdamW, compile), fed random token ids of
    exactly that length; a warm-up step, then `steps` timed steps (their median time). Peak memory is
    `torch.cuda.max_memory_allocated` on a GPU (weights, gradients, optimizer state and
    activations, reset before the model is moved there); on the CPU it is the increase of
    the process's resident set over its size just before the model is loaded (the peak RSS
    is reset first through /proc/self/clear_refs, so an earlier high-water mark of the
    process does not count; the absolute peak RSS is recorded too);
(b) the finished training runs of the studies: their `train.json` records (parameter counts,
    training time without validation, samples/s, peak memory), and their tokenized training
    parts for tokens/s (non-padding tokens).

A probe that cannot run is never a crash: a method that would repeat another (top-k with k
above the depth) is skipped with its reason; a method that cannot apply to the model (BitFit
on a Llama without bias terms: the method's check or build refuses it) is recorded as not
applicable with the method's reason, so the study still plans and the table says why; a
sequence length that does not fit the model's positions (prefix tuning: the prefix takes
positions) is capped to the longest that fits, and the table says so; running out of memory
is recorded as "OOM" with the device's size. Config: the optional top-level `resource_study` section (`check_config`).

The package is split by concern, so that each job's code hash (lwob.plan.dependencies.code_of)
covers what the job runs and nothing else: editing the table does not rerun the probes.

- `spec`: the config section, each probe's spec, the study's paths (planning: no torch);
- `probe`: one probe job (the `resource_probe` rule);
- `table`: the finished runs' costs, the frame, the LaTeX/CSV table (with the paper's Table 7
  memory beside the probes, from the config's `reference` CSV) and the rule's entry point
  (the `resource_table` rule), drawing with `figure`.

This __init__ imports none of them (see above).
"""
