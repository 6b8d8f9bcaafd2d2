// velero of the openova test bed: Velero's own main (cmd/velero), with one change. Velero's controller-runtime
// manager serves metrics on controller-runtime's default ":8080" and Velero has no flag for it, so two test beds on
// one machine (or anything else on :8080) would collide. OPENOVA_VELERO_CONTROLLER_METRICS sets that address;
// unset, it is "0", which turns that server off. Velero's own metrics (--metrics-address) are not affected.
package main

import (
	"os"
	"path/filepath"

	"k8s.io/klog/v2"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/vmware-tanzu/velero/pkg/cmd"
	"github.com/vmware-tanzu/velero/pkg/cmd/velero"
)

func main() {
	defer klog.Flush()
	metricsserver.DefaultBindAddress = "0"
	if addr := os.Getenv("OPENOVA_VELERO_CONTROLLER_METRICS"); addr != "" {
		metricsserver.DefaultBindAddress = addr
	}
	baseName := filepath.Base(os.Args[0])
	err := velero.NewCommand(baseName).Execute()
	cmd.CheckError(err)
}
