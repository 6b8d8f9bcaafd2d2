// kubectl of the openova test bed, as k8s.io/kubernetes/cmd/kubectl builds it. The tests use it for server-side
// dry-run applies (validation by the real API server against the real CRD schemas).
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
