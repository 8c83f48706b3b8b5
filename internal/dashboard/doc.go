// Package dashboard is the live page a coordinator serves at / of its
// --metrics address: the training and validation curves of the whole run,
// throughput, ETA, learning rate, the members with each worker's step and
// ring times, generations, checkpoints and the run's state.
//
// It has three parts. Recorder is pure: it folds the run's typed status
// events (internal/events) and the workers' step reports into a Status,
// in memory that does not grow with the run (curves are downsampled,
// lists keep their newest entries). Handler does the I/O: the page, its
// script and style (embedded; nothing is fetched from elsewhere) and the
// Status as JSON at /api/status, which the page polls. The coordinator
// supplies the Status through the Source interface.
//
// The page needs no cluster key: anyone who can reach the --metrics
// address can read it (and /metrics). Responses are bounded in size, and
// the Source is asked at most four times a second however many requests
// come.
package dashboard
