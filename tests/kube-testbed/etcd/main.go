// The etcd server of the openova test bed: the same entry point as etcd's own main (go.etcd.io/etcd/v3), built as a
// dependency because etcd's server module carries relative replaces that `go install pkg@version` refuses.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
