package schedule

import "errors"

// Errors of this package, for errors.Is. Returned errors wrap one of them
// and add the field, step or value at fault.
var (
	// ErrConfig reports a Config that Validate rejects.
	ErrConfig = errors.New("schedule: invalid config")
	// ErrLoss reports a validation loss that is NaN or infinite; the
	// plateau state is left unchanged.
	ErrLoss = errors.New("schedule: validation loss is not finite")
	// ErrStep reports an observation whose step is negative or not after
	// the step of the previous observation (a replay after a restart).
	ErrStep = errors.New("schedule: observation out of order")
	// ErrState reports plateau state bytes that UnmarshalBinary rejects:
	// wrong length, version or checksum, or values no Schedule produces.
	ErrState = errors.New("schedule: invalid plateau state")
)
