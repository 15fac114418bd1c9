// Command coredns is the local cluster's DNS server: CoreDNS (github.com/coredns/coredns,
// Apache-2.0) with only the plugins that hack/dns/Corefile uses compiled in. hack/dns.sh builds
// it into a version-keyed cache, in a throwaway module that requires CoreDNS at one release.
//
// This is CoreDNS's documented way to build with a reduced plugin set without forking it: import
// the plugins wanted (each registers itself), and set the directive list, which is also the order
// a query passes through them, before coremain.Run reads the Corefile. There is no `forward`:
// the cluster has no outside network, so CoreDNS answers for the cluster's zones only and
// refuses every other name at once.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// directives keeps the relative order of CoreDNS's own plugin.cfg.
var directives = []string{
	"bind",
	"ready",
	"errors",
	"log",
	"cache",
	"kubernetes",
}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
