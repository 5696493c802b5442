/**
 * PyTorch calls the host thread dispatches, counted in the code mixtral-offloading runs: its own layers
 * (src/custom_layers.py, src/expert_cache.py) and the transformers 4.36.1 Mixtral model and `generate`
 * it builds on (requirements.txt pins transformers==4.36.1; the eager attention path, since the notebook
 * asks for no other). One torch call counts once even where it dispatches several aten operators
 * (indexing with a Python list builds an index tensor and copies it to the GPU), and Python-only work
 * (shape checks, the generator of `load_experts`, the LRU bookkeeping) is not counted: the counts are a
 * lower bound on the host's work. Each costs the profile's eager dispatch time (kernel-rates.ts).
 */

/** `HQQLinearTritonSavable.forward_triton`: Quantizer.dequantize of scales and of zeros (half, sub, mul, reshape: 8), three `.view`s, and `triton_matmul*_transpose` (a.view, torch.empty, the kernel launch, c.view). */
export const HQQ_LINEAR_CALLS = 8 + 3 + 4;

/** `MixtralRMSNorm.forward`: to(float32), pow, mean, add, rsqrt, mul, to(dtype), mul by the weight. */
export const RMS_NORM_CALLS = 8;

/**
 * `MixtralAttention.forward` (eager), besides its four HQQ projections: three view+transpose (6);
 * rotary_emb slicing and casting cos and sin (4); apply_rotary_pos_emb: cos/sin indexed and unsqueezed
 * (4), q and k each multiplied, rotate_half (two slices, neg, cat), multiplied, added (14);
 * DynamicCache.update's two torch.cat (2); repeat_kv for k and v (index, expand, reshape: 6); QK^T
 * (transpose, matmul, divide: 3); mask add (1); softmax and cast (2); dropout (1); AV matmul (1);
 * transpose, contiguous, reshape (3).
 */
export const ATTENTION_OTHER_CALLS = 6 + 4 + 4 + 14 + 2 + 6 + 3 + 1 + 2 + 1 + 1 + 3;

/** `MixtralDecoderLayer.forward` around attention and the MoE block: two RMSNorms and two residual adds. */
export const DECODER_LAYER_CALLS = 2 * RMS_NORM_CALLS + 2;

/**
 * `SparseMoeWrapper.forward` outside the expert loop: view, gate, softmax, topk, sum, divide, cast, zeros,
 * one_hot, permute, flatten, unique, tolist, and the final reshape.
 */
export const ROUTER_CALLS = 14;

/**
 * One pass of the expert loop in `SparseMoeWrapper.forward`: expert_mask indexed, torch.where, two
 * `.tolist()`, hidden states indexed by a list and reshaped (2), the expert (three HQQ linears, act_fn,
 * multiply), routing weights indexed by lists, multiplied, cast, index_add_.
 */
export const EXPERT_LOOP_CALLS = 4 + 2 + (3 * HQQ_LINEAR_CALLS + 2) + 4;

/** `ExpertCache._swap`: two `copy_(..., non_blocking=True)`, host->device for the missing expert and device->host for the evicted one. */
export const SWAP_CALLS = 2;

/**
 * Once per forward (prompt or generated token), outside the decoder layers: in `MixtralModel.forward`
 * the embedding, position ids (arange or cumsum, masked_fill, slicing: 3), the 4-D causal mask
 * (`_prepare_4d_causal_attention_mask`: about 10), the final RMSNorm, lm_head and `logits.float()`; in
 * `generate`'s sampling loop the last position's logits, temperature and top-p warpers (divide; sort,
 * softmax, cumsum, compare, assign, scatter, masked_fill), softmax, multinomial and squeeze, the
 * finished-sequence arithmetic (4), torch.cat of input_ids, the streamer's `.cpu()`, the attention-mask
 * cat and new_ones (2), the unfinished flags (4) and `unfinished_sequences.max() == 0`.
 */
export const FORWARD_CALLS = 1 + 3 + 10 + RMS_NORM_CALLS + 2 + 1 + 8 + 3 + 4 + 1 + 1 + 2 + 4 + 1;

/**
 * Host synchronisations (a device->host copy the host waits for): the router's `unique()` (its output
 * size) and `.tolist()`; per expert, torch.where (nonzero's count) and two `.tolist()`; per forward,
 * the streamer's `.cpu()` and `max() == 0`.
 */
export const ROUTER_SYNCS = 2;
export const EXPERT_SYNCS = 3;
export const FORWARD_SYNCS = 2;

/** Small host->device copies of index lists per expert: hidden_states[None, top_x_list] (1), routing_weights[top_x_list, idx_list] (2). */
export const EXPERT_INDEX_UPLOADS = 3;
