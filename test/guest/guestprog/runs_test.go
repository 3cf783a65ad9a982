package main

import (
	"os/exec"
	"strings"
	"testing"

	"virtiofsd/test/guest/scenario"
)

// exitErr returns the *exec.ExitError of a shell exiting with code.
func exitErr(t *testing.T, code string) error {
	t.Helper()
	err := exec.Command("/bin/sh", "-c", "exit "+code).Run()
	if err == nil {
		t.Fatal("sh exited 0")
	}
	return err
}

func TestJudgeStress(t *testing.T) {
	ok := "stress-ng: info:  [1] dispatching hogs: 1 hdd\nstress-ng: info:  [1] successful run completed in 3.00s\n"
	tests := []struct {
		name    string
		out     string
		code    string // "" for success
		want    string
		summary string
	}{
		{"pass", ok, "", scenario.StressPass, "exit 0"},
		{"verify failure", "stress-ng: fail:  [2] hdd: data verification error at 4096\n", "2", scenario.StressFail, "verification"},
		{"fail line with exit 0", "stress-ng: fail:  [2] link: nlink is 1, expected 2\n" + ok, "", scenario.StressFail, "nlink"},
		{"no resource", "stress-ng: info: [1] skipped: 1\n", "3", scenario.StressSkip, "exit 3"},
		{"skipped by stressor", "stress-ng: info:  [3] fiemap: FS_IOC_FIEMAP not supported on the file system, skipping stressor\n", "",
			scenario.StressSkip, "not supported"},
		{"crash without output", "", "139", scenario.StressFail, "exit 139"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.code != "" {
				err = exitErr(t, tc.code)
			}
			got, detail := judgeStress([]byte(tc.out), err)
			if got != tc.want || !strings.Contains(detail, tc.summary) {
				t.Errorf("judgeStress = %s, %q; want %s with %q", got, detail, tc.want, tc.summary)
			}
		})
	}
}
