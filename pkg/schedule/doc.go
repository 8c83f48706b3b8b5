// Package schedule computes the learning rate of every training step, as the
// coordinator of a data-parallel run owns it.
//
// A Schedule is pure logic with no I/O: LR(step, world) is a deterministic
// function of the step, the world size and, for the reduce-on-plateau kind,
// the state built by Observe. The kinds follow PyTorch's schedulers
// (torch.optim.lr_scheduler) in their closed forms:
//
//	constant     lr
//	step         lr * gamma^(step / step_size)               StepLR
//	exponential  lr * gamma^step                             ExponentialLR
//	cosine       eta_min + (lr-eta_min)(1+cos(pi step/T))/2  CosineAnnealingLR
//	plateau      lr reduced by factor when the validation    ReduceLROnPlateau
//	             loss stops improving (mode min, rel threshold)
//
// A linear warmup may stand in front of any kind, as PyTorch's
// SequentialLR([LinearLR(start_factor, total_iters=warmup), main],
// milestones=[warmup]) does: step s < warmup runs at
// lr*(start + (1-start)*s/warmup), and step s >= warmup runs the main
// schedule at its own step s-warmup.
//
// With ScaleByWorld the linear scaling rule of Goyal et al. ("Accurate,
// Large Minibatch SGD", 2017) multiplies the base lr by world/base_world.
// The scale applies to the base lr only (eta_min stays absolute, and the
// warmup ramps to the scaled lr) and, since world is an argument of LR, it is
// recomputed whenever the world size changes.
//
// The plateau state (best loss, bad epochs, cooldown, current factor) is
// saved with MarshalBinary, in a versioned record with a CRC-32C, so that a
// restarted coordinator resumes the exact schedule.
package schedule
