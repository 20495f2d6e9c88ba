package engine

import (
	"errors"

	"github.com/orderflow/orderflow/engine/ingest"
)

// SetAPIKeys replaces the public listener's API keys (see
// ingest.Server.SetAPIKeys): new keys work and removed ones get 401 from the
// moment it returns; requests already admitted finish. Call it after Start.
// Safe for concurrent use.
func (e *Engine) SetAPIKeys(keys []ingest.APIKey) error {
	if e.front == nil {
		return errors.New("engine not started")
	}
	return e.front.SetAPIKeys(keys)
}
