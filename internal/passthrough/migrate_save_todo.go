package passthrough

import (
	"errors"

	"virtiofsd/internal/migration"
)

// Placeholders until the source side lands.
func (fs *FS) prepareMigration() {}
func (fs *FS) cancelMigration()  {}
func (fs *FS) saveState() (*migration.State, error) {
	return nil, errors.New("saving the device state is not implemented")
}
