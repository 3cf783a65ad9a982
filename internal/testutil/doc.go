// Package testutil holds helpers shared by the project's tests. The
// vhost-user test front-end lives in the frontend subpackage.
package testutil
