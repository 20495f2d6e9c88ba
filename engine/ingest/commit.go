package ingest

import (
	"errors"

	"github.com/orderflow/orderflow/engine/pipeline"
)

// Handing decoded work to the pipelines and waiting for its commit.

// submitRefused is the answer to a pipeline's TrySubmit error (statusFor:
// 503 overloaded or shutting_down); a full queue also counts as an
// admission rejection (queue_full).
func (s *Server) submitRefused(err error) answer {
	if errors.Is(err, pipeline.ErrOverloaded) {
		s.rejected[reasonQueueFull].Inc()
	}
	return statusFor(err)
}

// waitDone waits for a submitted batch until AckTimeout. It reports false
// on timeout: the batch's fate is then unknown, and it must not go back to
// its pool (the GC takes it once the writer is done).
func (s *Server) waitDone(done <-chan struct{}) bool {
	t := getTimer(s.cfg.AckTimeout)
	defer putTimer(t)
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// bulkBatch is what a bulk request submits: order.Batch or order.UpdateBatch.
type bulkBatch interface {
	Len() int
	Done() <-chan struct{}
}

// submitAndWait submits every non-empty batch of a bulk request and waits
// for all that went in, until AckTimeout (one deadline for all). The items
// of a batch that TrySubmit refused get that refusal's answer
// (submitRefused, as the single endpoints answer it), and refused is told
// of the batch. It reports false when the wait timed out: the batches'
// fates are then unknown and they must not go back to their pool.
func submitAndWait[B bulkBatch](s *Server, batches []B, items []bulkItem, submit func(B) error, refused func(B, answer)) bool {
	submitted := make([]bool, len(batches))
	for i, b := range batches {
		if b.Len() == 0 {
			continue
		}
		if err := submit(b); err != nil {
			a := s.submitRefused(err)
			for j := range items {
				if items[j].batch == i {
					items[j].answer, items[j].batch = a, -1
				}
			}
			refused(b, a)
			continue
		}
		submitted[i] = true
	}
	deadline := getTimer(s.cfg.AckTimeout)
	defer putTimer(deadline)
	for i, b := range batches {
		if !submitted[i] {
			continue
		}
		select {
		case <-b.Done():
		case <-deadline.C:
			return false
		}
	}
	return true
}
