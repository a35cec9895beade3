// Command pause is the sandbox ("pause") image of the project's real test node: containerd starts
// one per pod to hold the pod's namespaces. Nothing can be pulled on our machines, so it is built
// here (scripts/node/images.sh) instead of using registry.k8s.io/pause.
//
// It blocks until SIGTERM or SIGINT and exits 0, and reaps orphaned children (it is PID 1 of the pod
// when the pod shares its process namespace).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s == syscall.SIGCHLD {
			for {
				var ws syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
