package passthrough

import (
	"errors"

	"virtiofsd/internal/migration"
)

// Placeholder until the destination side lands.
func (fs *FS) loadState(st *migration.State) error {
	return errors.New("loading the device state is not implemented")
}
