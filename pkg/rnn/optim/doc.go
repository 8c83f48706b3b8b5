// Package optim implements the first-order optimizers used to train Recur's
// recurrent models: SGD (with momentum, dampening and Nesterov), Adam, AdamW
// and RMSprop, each matching the update rule of its torch.optim counterpart
// so that a run can be compared step by step with PyTorch.
//
// Optimizers are generic over float32 (training) and float64 (checking).
// They keep their state (moments, momentum buffers, the step count) keyed by
// parameter name, so a checkpoint written with MarshalBinary can be loaded
// into a model whose parameters come in a different order. The learning rate
// is an argument of every Step: the caller owns the schedule.
//
// ClipGlobalNorm and CheckFinite are the two gradient checks a training loop
// runs between the backward pass and Step.
//
// An optimizer is not safe for concurrent use.
package optim
