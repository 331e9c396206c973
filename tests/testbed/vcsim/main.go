// vmshare-vcsim: vmshare's vCenter simulator for tests, built from Debian's govmomi simulator
// library (golang-github-vmware-govmomi-dev 0.24.2) in GOPATH mode by tests/testbed/vcsim.
//
// It creates a vCenter (VPX) inventory: one datacenter, one cluster of -hosts hosts and -vms
// virtual machines, the first of them renamed to -guest-vm and made to look like a running
// Linux guest with VMware Tools (guest info set through the simulator's SET.guest.* extraConfig
// keys). It serves the inventory on -listen (loopback) over TLS with a certificate made for this
// run, and prints one JSON line on stdout when it answers.
//
// govmomi 0.24.2 has no StartProgramInGuest/ListProcessesInGuest and its file transfers need
// Docker, so this launcher registers its own guest process and file managers in their place. They
// answer the vSphere API's shapes (methods, data objects, fault types) and forward each program
// run and each file transfer, for -guest-vm only, to -forward: a loopback HTTP endpoint of the
// Python test bed that runs argv in the project's real QEMU test guest through its guest agent.
//
// Its stdin takes one command a line, each answered by one JSON line on stdout (see
// taskFaults.command): "fail-task METHOD MESSAGE" makes the next call of that task method on a
// -guest-vm VM end in error (a failed vSphere task, for vmshare's fault tests); "clear" undoes it.
// It exits on SIGTERM/SIGINT and when its stdin reaches end of file (its parent is gone).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// The govmomi package version this launcher is written against (reported in the ready line).
const govmomiVersion = "0.24.2"

// guestFilePath is where real ESXi serves guest file transfers: https://*/guestFile?id=..&token=..
const guestFilePath = "/guestFile"

type config struct {
	listen        string
	vms           int
	hosts         int
	user          string
	password      string
	guestVM       string
	guestVMs      int
	guestIP       string
	toolsVersion  string
	guestUser     string
	guestPassword string
	forward       string
	execTimeout   time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.listen, "listen", "127.0.0.1:0", "address to serve on (loopback)")
	flag.IntVar(&c.vms, "vms", 4, "number of virtual machines in the cluster (>= 1)")
	flag.IntVar(&c.hosts, "hosts", 3, "number of hosts in the cluster")
	flag.StringVar(&c.user, "user", "vmshare@vsphere.local", "vCenter user name")
	flag.StringVar(&c.password, "password", "vcsim-pass", "vCenter password")
	flag.StringVar(&c.guestVM, "guest-vm", "vmshare-vc", "name of the VM that stands for the real test guest")
	flag.IntVar(&c.guestVMs, "guest-vms", 1, "how many VMs stand for the test guest: -guest-vm, then -guest-vm-2 .. -guest-vm-N (all forward to the same guest)")
	flag.StringVar(&c.guestIP, "guest-ip", "127.0.0.1", "IP address VMware Tools reports for that VM")
	flag.StringVar(&c.toolsVersion, "tools-version", "12325", "VMware Tools version number reported")
	flag.StringVar(&c.guestUser, "guest-user", "root", "guest operations user name")
	flag.StringVar(&c.guestPassword, "guest-password", "guest-pass", "guest operations password")
	flag.StringVar(&c.forward, "forward", "", "http://127.0.0.1:PORT of the test bed's guest endpoint (empty: guest operations unavailable)")
	flag.DurationVar(&c.execTimeout, "exec-timeout", 10*time.Minute, "longest run of one guest program")
	flag.Parse()
	log.SetPrefix("vmshare-vcsim: ")
	if c.vms < 1 || c.hosts < 1 {
		log.Fatal("-vms and -hosts must be at least 1")
	}
	if c.guestVMs < 1 || c.guestVMs > c.vms {
		log.Fatal("-guest-vms must be between 1 and -vms")
	}
	if err := run(c); err != nil {
		log.Fatal(err)
	}
}

func run(c config) error {
	started := time.Now()
	model := simulator.VPX()
	model.Datacenter = 1
	model.Cluster = 1
	model.ClusterHost = c.hosts
	model.Host = 0 // no standalone host: every VM sits in the cluster's root resource pool
	model.Machine = c.vms
	model.Autostart = true
	if err := model.Create(); err != nil {
		return fmt.Errorf("creating the model: %w", err)
	}
	defer model.Remove()

	certificate, certPEM, thumbprint, err := selfSignedCertificate()
	if err != nil {
		return err
	}
	guest := newGuestOps(c)
	model.Service.ServeMux = http.NewServeMux()
	model.Service.ServeMux.HandleFunc(guestFilePath, guest.serveTransfer)
	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{certificate}}
	model.Service.Listen = &url.URL{Host: c.listen, User: url.UserPassword(c.user, c.password)}
	server := model.Service.NewServer()
	defer server.Close()
	faults := &taskFaults{vms: guest.vms, next: map[string]string{}}
	server.Config.Handler = faults.wrap(server.Config.Handler) // before the first request

	refs, names, err := prepareGuestVMs(c, server.URL)
	if err != nil {
		return fmt.Errorf("preparing %s: %w", c.guestVM, err)
	}
	vmRef := refs[0]
	for _, ref := range refs {
		guest.vms[ref] = true
	}
	if err := guest.register(model.ServiceContent); err != nil {
		return err
	}

	public := *server.URL
	public.User = nil // the credentials are fields of their own
	ready := map[string]interface{}{
		"url":        public.String(),
		"host":       server.URL.Hostname(),
		"port":       mustAtoi(server.URL.Port()),
		"username":   c.user,
		"password":   c.password,
		"thumbprint": thumbprint,
		"cert_pem":   certPEM,
		"vm":         c.guestVM,
		"vm_ref":     vmRef.Value,
		"guest_vms":  names,
		"vms":        len(simulator.Map.All("VirtualMachine")),
		"hosts":      len(simulator.Map.All("HostSystem")),
		"guest_ip":   c.guestIP,
		"pid":        os.Getpid(),
		"govmomi":    govmomiVersion,
		"seconds":    time.Since(started).Seconds(),
	}
	line, _ := json.Marshal(ready)
	fmt.Println(string(line))

	stop := make(chan os.Signal, 2)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() { // commands, until the parent closes our stdin (or dies): then stop
		lines := bufio.NewScanner(os.Stdin)
		for lines.Scan() {
			reply, _ := json.Marshal(faults.command(lines.Text()))
			fmt.Println(string(reply))
		}
		stop <- syscall.SIGTERM
	}()
	<-stop
	return nil
}

func mustAtoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

// selfSignedCertificate makes this run's server certificate (its own CA), for 127.0.0.1 and
// localhost; returns it, its PEM and its SHA-1 thumbprint as vSphere shows it (AA:BB:..).
func selfSignedCertificate() (tls.Certificate, string, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, "", "", err
	}
	template := x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "vmshare vcsim", Organization: []string{"vmshare test bed"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, &template, &template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, "", "", err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, "", "", err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	certificate, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, "", "", err
	}
	sum := sha1.Sum(der)
	hexed := strings.ToUpper(hex.EncodeToString(sum[:]))
	var pairs []string
	for i := 0; i < len(hexed); i += 2 {
		pairs = append(pairs, hexed[i:i+2])
	}
	return certificate, string(certPEM), strings.Join(pairs, ":"), nil
}

// prepareGuestVM renames the inventory's first VM to c.guestVM and sets its guest info through
// the vSphere API, as any client would (ReconfigVM_Task with SET.guest.* extraConfig keys).
// prepareGuestVMs makes the first -guest-vms VMs (by name) stand for the test guest: the first
// is renamed -guest-vm, the others -guest-vm-2 ..; every one forwards to the same real guest.
func prepareGuestVMs(c config, u *url.URL) ([]types.ManagedObjectReference, []string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	client, err := govmomi.NewClient(ctx, u, true)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = client.Logout(context.Background()) }()

	var names []string
	byName := map[string]types.ManagedObjectReference{}
	for _, e := range simulator.Map.All("VirtualMachine") {
		vm := e.(*simulator.VirtualMachine)
		names = append(names, vm.Name)
		byName[vm.Name] = vm.Self
	}
	sort.Strings(names)
	var refs []types.ManagedObjectReference
	var renamed []string
	for i := 0; i < c.guestVMs; i++ {
		name := c.guestVM
		if i > 0 {
			name = fmt.Sprintf("%s-%d", c.guestVM, i+1)
		}
		ref, err := prepareGuestVM(ctx, c, client, byName[names[i]], name)
		if err != nil {
			return nil, nil, err
		}
		refs = append(refs, ref)
		renamed = append(renamed, name)
	}
	return refs, renamed, nil
}

func prepareGuestVM(ctx context.Context, c config, client *govmomi.Client, ref types.ManagedObjectReference, name string) (types.ManagedObjectReference, error) {
	vm := object.NewVirtualMachine(client.Client, ref)

	task, err := vm.Rename(ctx, name)
	if err != nil {
		return ref, err
	}
	if err := task.Wait(ctx); err != nil {
		return ref, err
	}
	set := map[string]string{
		"guest.ipAddress":                   c.guestIP,
		"guest.hostName":                    "testvm",
		"guest.guestState":                  "running",
		"guest.toolsRunningStatus":          "guestToolsRunning",
		"guest.toolsStatus":                 "toolsOk",
		"guest.toolsVersionStatus2":         "guestToolsCurrent",
		"guest.toolsVersion":                c.toolsVersion,
		"guest.guestFamily":                 "linuxGuest",
		"guest.guestId":                     "debian10_64Guest",
		"guest.guestFullName":               "Debian GNU/Linux 12 (64-bit)",
		"guest.guestOperationsReady":        "true",
		"summary.guest.toolsRunningStatus":  "guestToolsRunning",
		"summary.guest.toolsStatus":         "toolsOk",
		"summary.guest.toolsVersionStatus2": "guestToolsCurrent",
		"summary.guest.guestId":             "debian10_64Guest",
		"summary.guest.guestFullName":       "Debian GNU/Linux 12 (64-bit)",
		"summary.guest.hostName":            "testvm",
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	spec := types.VirtualMachineConfigSpec{GuestId: "debian10_64Guest"}
	for _, k := range keys {
		var value interface{} = set[k]
		if k == "guest.guestOperationsReady" {
			value = true
		}
		spec.ExtraConfig = append(spec.ExtraConfig, &types.OptionValue{Key: "SET." + k, Value: value})
	}
	task, err = vm.Reconfigure(ctx, spec)
	if err != nil {
		return ref, err
	}
	if err := task.Wait(ctx); err != nil {
		return ref, err
	}
	// guest.net: the one NIC, connected, with the reported address and a prefix length.
	obj := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	simulator.Map.WithLock(obj, func() {
		if len(obj.Guest.Net) > 0 {
			nic := &obj.Guest.Net[0]
			nic.Connected = true
			nic.IpAddress = []string{c.guestIP}
			nic.IpConfig = &types.NetIpConfigInfo{IpAddress: []types.NetIpConfigInfoIpAddress{{
				IpAddress: c.guestIP, PrefixLength: 8, State: "preferred",
			}}}
			simulator.Map.Update(obj, []types.PropertyChange{{Name: "guest.net", Val: obj.Guest.Net}})
		}
	})
	return ref, nil
}

// --- guest operations ----------------------------------------------------------------------

type process struct {
	info     types.GuestProcessInfo
	ended    bool
	exitCode int32
}

type transfer struct {
	toGuest bool
	path    string
	size    int64
	mode    int64 // permissions for an upload; 0: leave as made
	data    []byte
	expires time.Time
}

type guestOps struct {
	c   config
	run string // this launcher run's id, in the guest's pid file names
	vms map[types.ManagedObjectReference]bool // the VMs that stand for the real guest
	mu  sync.Mutex
	pid int64

	processes map[int64]*process
	transfers map[string]*transfer
	http      *http.Client
}

func newGuestOps(c config) *guestOps {
	id := make([]byte, 6)
	_, _ = rand.Read(id)
	return &guestOps{
		c:         c,
		run:       hex.EncodeToString(id),
		pid:       4000,
		vms:       map[types.ManagedObjectReference]bool{},
		processes: map[int64]*process{},
		transfers: map[string]*transfer{},
		http:      &http.Client{Timeout: c.execTimeout + time.Minute},
	}
}

// register puts this launcher's guest process and file managers in the simulator's place, under
// the references its GuestOperationsManager hands out.
func (g *guestOps) register(content types.ServiceContent) error {
	if content.GuestOperationsManager == nil {
		return errors.New("the model has no GuestOperationsManager")
	}
	gom, ok := simulator.Map.Get(*content.GuestOperationsManager).(*simulator.GuestOperationsManager)
	if !ok || gom.ProcessManager == nil || gom.FileManager == nil {
		return errors.New("the model's GuestOperationsManager has no process or file manager")
	}
	pm := &processManager{g: g}
	pm.Self = *gom.ProcessManager
	simulator.Map.Put(pm)
	fm := &fileManager{g: g}
	fm.Self = *gom.FileManager
	simulator.Map.Put(fm)
	return nil
}

// check answers what vSphere checks before any guest operation: the VM exists and is on, its
// Tools run, the guest operations reach a guest, and the guest credentials are right.
func (g *guestOps) check(ctx *simulator.Context, ref types.ManagedObjectReference, auth types.BaseGuestAuthentication) types.BaseMethodFault {
	vm, ok := ctx.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return &types.ManagedObjectNotFound{Obj: ref}
	}
	var power types.VirtualMachinePowerState
	var tools string
	ctx.WithLock(vm, func() {
		power = vm.Runtime.PowerState
		tools = vm.Guest.ToolsRunningStatus
	})
	if power != types.VirtualMachinePowerStatePoweredOn {
		return &types.InvalidPowerState{RequestedState: types.VirtualMachinePowerStatePoweredOn, ExistingState: power}
	}
	if tools != string(types.VirtualMachineToolsRunningStatusGuestToolsRunning) || !g.vms[ref] || g.c.forward == "" {
		return &types.GuestOperationsUnavailable{}
	}
	login, ok := auth.(*types.NamePasswordAuthentication)
	if !ok {
		return &types.InvalidArgument{InvalidProperty: "auth"}
	}
	if login.Username != g.c.guestUser || login.Password != g.c.guestPassword {
		return &types.InvalidGuestLogin{}
	}
	return nil
}

// guestResult is the test bed endpoint's answer to POST /exec.
type guestResult struct {
	ExitCode int    `json:"exitCode"`
	Stdout   []byte `json:"stdout"` // base64 in JSON
	Stderr   []byte `json:"stderr"`
	Error    string `json:"error"`
}

// exec runs argv in the real guest through the test bed's endpoint.
func (g *guestOps) exec(argv []string, stdin []byte, timeout time.Duration) (*guestResult, error) {
	request, _ := json.Marshal(map[string]interface{}{
		"argv": argv, "stdin": stdin, "timeout": timeout.Seconds(),
	})
	resp, err := g.http.Post(g.c.forward+"/exec", "application/json", bytes.NewReader(request))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var result guestResult
	if err := json.NewDecoder(resp.Body).Decode(&result); err != nil {
		return nil, fmt.Errorf("guest endpoint answered %s: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK || result.Error != "" {
		return nil, fmt.Errorf("guest endpoint: %s %s", resp.Status, result.Error)
	}
	return &result, nil
}

// script runs a POSIX shell script in the guest with args as $1..; returns its exit code and
// output, or a fault when the guest cannot be reached.
func (g *guestOps) script(text string, stdin []byte, args ...string) (*guestResult, types.BaseMethodFault) {
	argv := append([]string{"sh", "-c", text, "sh"}, args...)
	result, err := g.exec(argv, stdin, time.Minute)
	if err != nil {
		log.Printf("guest operation failed: %v", err)
		return nil, &types.GuestOperationsUnavailable{}
	}
	return result, nil
}

func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func fault(f types.BaseMethodFault) *soap.Fault {
	return simulator.Fault("", f)
}

// --- GuestProcessManager -------------------------------------------------------------------

type processManager struct {
	mo.GuestProcessManager
	g *guestOps
}

// StartProgramInGuest starts `"programPath" arguments` through /bin/sh -c in the guest, as
// VMware Tools does on Linux (so the arguments are shell words), and returns a pid at once.
// Its output goes nowhere, as with Tools; the exit code is kept for ListProcessesInGuest.
func (m *processManager) StartProgramInGuest(ctx *simulator.Context, req *types.StartProgramInGuest) soap.HasFault {
	body := new(methods.StartProgramInGuestBody)
	g := m.g
	if f := g.check(ctx, req.Vm, req.Auth); f != nil {
		body.Fault_ = fault(f)
		return body
	}
	spec := req.Spec.GetGuestProgramSpec()
	if !strings.HasPrefix(spec.ProgramPath, "/") {
		body.Fault_ = fault(&types.InvalidArgument{InvalidProperty: "spec.programPath"})
		return body
	}
	checked, f := g.script(`[ -z "$2" ] || [ -d "$2" ] || exit 3; [ -f "$1" ] && [ -x "$1" ] || exit 2`,
		nil, spec.ProgramPath, spec.WorkingDirectory)
	if f != nil {
		body.Fault_ = fault(f)
		return body
	}
	switch checked.ExitCode {
	case 0:
	case 3:
		body.Fault_ = fault(&types.FileNotFound{FileFault: types.FileFault{File: spec.WorkingDirectory}})
		return body
	default:
		body.Fault_ = fault(&types.FileNotFound{FileFault: types.FileFault{File: spec.ProgramPath}})
		return body
	}

	cmdline := quote(spec.ProgramPath)
	if spec.Arguments != "" {
		cmdline += " " + spec.Arguments
	}
	var prelude strings.Builder
	if spec.WorkingDirectory != "" {
		fmt.Fprintf(&prelude, "cd %s || exit 1\n", quote(spec.WorkingDirectory))
	}
	for _, kv := range spec.EnvVariables {
		if i := strings.Index(kv, "="); i > 0 {
			fmt.Fprintf(&prelude, "export %s\n", quote(kv))
		}
	}
	g.mu.Lock()
	g.pid++
	p := &process{info: types.GuestProcessInfo{
		Name:      path.Base(spec.ProgramPath),
		Pid:       g.pid,
		Owner:     g.c.guestUser,
		CmdLine:   fmt.Sprintf("%q %s", spec.ProgramPath, spec.Arguments),
		StartTime: time.Now().UTC(),
	}}
	g.processes[p.info.Pid] = p
	g.mu.Unlock()

	// The guest pid goes to a file for TerminateProcessInGuest; exec keeps that pid.
	pidFile := g.pidFile(p.info.Pid)
	script := "echo $$ > " + quote(pidFile) + "\n" + prelude.String() + "exec /bin/sh -c " + quote(cmdline)
	go func() {
		code := int32(-1)
		result, err := g.exec([]string{"sh", "-c", script}, nil, g.c.execTimeout)
		if err != nil {
			log.Printf("pid %d: %v", p.info.Pid, err)
		} else {
			code = int32(result.ExitCode)
		}
		g.mu.Lock()
		end := time.Now().UTC()
		p.info.EndTime = &end
		p.ended = true
		p.exitCode = code
		g.mu.Unlock()
		if _, err := g.exec([]string{"rm", "-f", pidFile}, nil, time.Minute); err != nil {
			log.Printf("pid %d: removing %s: %v", p.info.Pid, pidFile, err)
		}
	}()

	body.Res = &types.StartProgramInGuestResponse{Returnval: p.info.Pid}
	return body
}

func (g *guestOps) pidFile(pid int64) string {
	return fmt.Sprintf("/tmp/.vmshare-vcsim-%s-%d.pid", g.run, pid)
}

// TerminateProcessInGuest sends SIGTERM to a program started through StartProgramInGuest and
// its descendants, then SIGKILL to what is left after 5 s, as Tools does on Linux.
func (m *processManager) TerminateProcessInGuest(ctx *simulator.Context, req *types.TerminateProcessInGuest) soap.HasFault {
	body := new(methods.TerminateProcessInGuestBody)
	g := m.g
	if f := g.check(ctx, req.Vm, req.Auth); f != nil {
		body.Fault_ = fault(f)
		return body
	}
	g.mu.Lock()
	p, ok := g.processes[req.Pid]
	running := ok && !p.ended
	g.mu.Unlock()
	if !running {
		body.Fault_ = fault(&types.GuestProcessNotFound{Pid: req.Pid})
		return body
	}
	// The tree is frozen (parents first) before SIGTERM, so that no shell in it runs on
	// when its child dies first; a process gone meanwhile is no error.
	result, f := g.script(`i=0; while [ ! -s "$1" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
p=$(cat "$1" 2>/dev/null) && [ -n "$p" ] && kill -0 "$p" 2>/dev/null || exit 2
tree() { echo $1; for c in $(cat /proc/$1/task/*/children 2>/dev/null); do tree $c; done; }
pids=$(tree $p); kill -STOP $pids 2>/dev/null; kill -TERM $pids 2>/dev/null; kill -CONT $pids 2>/dev/null
i=0; while [ $i -lt 50 ]; do alive=; for q in $pids; do kill -0 $q 2>/dev/null && alive=1; done
[ -z "$alive" ] && exit 0; sleep 0.1; i=$((i+1)); done
kill -KILL $pids 2>/dev/null; exit 0`, nil, g.pidFile(req.Pid))
	if f != nil {
		body.Fault_ = fault(f)
		return body
	}
	if result.ExitCode != 0 {
		log.Printf("terminating pid %d: exit %d: %s", req.Pid, result.ExitCode, result.Stderr)
		body.Fault_ = fault(&types.GuestProcessNotFound{Pid: req.Pid})
		return body
	}
	body.Res = &types.TerminateProcessInGuestResponse{}
	return body
}

// processInfo is vim.vm.guest.ProcessManager.ProcessInfo with exitCode sent whenever the
// process has ended, 0 included (govmomi 0.24.2's GuestProcessInfo drops a 0 exit code).
type processInfo struct {
	Name      string     `xml:"name"`
	Pid       int64      `xml:"pid"`
	Owner     string     `xml:"owner"`
	CmdLine   string     `xml:"cmdLine"`
	StartTime time.Time  `xml:"startTime"`
	EndTime   *time.Time `xml:"endTime,omitempty"`
	ExitCode  *int32     `xml:"exitCode,omitempty"`
}

// ListProcessesInGuestResponse is encoded under its type's name, as the simulator does.
type ListProcessesInGuestResponse struct {
	Returnval []processInfo `xml:"returnval,omitempty"`
}

type listProcessesBody struct {
	Req    *types.ListProcessesInGuest   `xml:"urn:vim25 ListProcessesInGuest,omitempty"`
	Res    *ListProcessesInGuestResponse `xml:"ListProcessesInGuestResponse,omitempty"`
	Fault_ *soap.Fault                   `xml:"http://schemas.xmlsoap.org/soap/envelope/ Fault,omitempty"`
}

func (b *listProcessesBody) Fault() *soap.Fault { return b.Fault_ }

// ListProcessesInGuest lists the programs started through StartProgramInGuest (running, or
// ended with their end time and exit code), all of them or those of pids.
func (m *processManager) ListProcessesInGuest(ctx *simulator.Context, req *types.ListProcessesInGuest) soap.HasFault {
	body := new(listProcessesBody)
	g := m.g
	if f := g.check(ctx, req.Vm, req.Auth); f != nil {
		body.Fault_ = fault(f)
		return body
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	pids := req.Pids
	if len(pids) == 0 {
		for pid := range g.processes {
			pids = append(pids, pid)
		}
		sort.Slice(pids, func(i, j int) bool { return pids[i] < pids[j] })
	}
	res := &ListProcessesInGuestResponse{}
	for _, pid := range pids {
		p, ok := g.processes[pid]
		if !ok {
			continue
		}
		info := processInfo{
			Name: p.info.Name, Pid: p.info.Pid, Owner: p.info.Owner, CmdLine: p.info.CmdLine,
			StartTime: p.info.StartTime, EndTime: p.info.EndTime,
		}
		if p.ended {
			code := p.exitCode
			info.ExitCode = &code
		}
		res.Returnval = append(res.Returnval, info)
	}
	body.Res = res
	return body
}

// --- GuestFileManager ----------------------------------------------------------------------

type fileManager struct {
	mo.GuestFileManager
	g *guestOps
}

func (g *guestOps) newTransfer(t *transfer) string {
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	t.expires = time.Now().Add(10 * time.Minute)
	g.mu.Lock()
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	key := id + "/" + hex.EncodeToString(token)
	g.transfers[key] = t
	g.mu.Unlock()
	// Host "*": the client puts in the server's host, as with real ESXi (see govmomi's
	// guest.FileManager.TransferURL).
	return (&url.URL{
		Scheme:   "https",
		Host:     "*",
		Path:     guestFilePath,
		RawQuery: url.Values{"id": {id}, "token": {hex.EncodeToString(token)}}.Encode(),
	}).String()
}

// InitiateFileTransferToGuest checks the target (an existing file needs overwrite, its folder
// must exist) and returns a one-use URL where an HTTP PUT of exactly fileSize bytes writes it.
func (m *fileManager) InitiateFileTransferToGuest(ctx *simulator.Context, req *types.InitiateFileTransferToGuest) soap.HasFault {
	body := new(methods.InitiateFileTransferToGuestBody)
	g := m.g
	if f := g.check(ctx, req.Vm, req.Auth); f != nil {
		body.Fault_ = fault(f)
		return body
	}
	overwrite := "0"
	if req.Overwrite {
		overwrite = "1"
	}
	checked, f := g.script(`[ -d "$1" ] && exit 4; [ -e "$1" ] && [ "$2" = 0 ] && exit 3; `+
		`[ -d "$(dirname -- "$1")" ] || exit 2; exit 0`, nil, req.GuestFilePath, overwrite)
	if f != nil {
		body.Fault_ = fault(f)
		return body
	}
	file := types.FileFault{File: req.GuestFilePath}
	switch checked.ExitCode {
	case 0:
	case 4:
		body.Fault_ = fault(&types.NotAFile{FileFault: file})
		return body
	case 3:
		body.Fault_ = fault(&types.FileAlreadyExists{FileFault: file})
		return body
	default:
		body.Fault_ = fault(&types.FileNotFound{FileFault: file})
		return body
	}
	t := &transfer{toGuest: true, path: req.GuestFilePath, size: req.FileSize}
	if posix, ok := req.FileAttributes.(*types.GuestPosixFileAttributes); ok {
		t.mode = posix.Permissions
	}
	body.Res = &types.InitiateFileTransferToGuestResponse{Returnval: g.newTransfer(t)}
	return body
}

// InitiateFileTransferFromGuest reads the file at once and returns its size, POSIX attributes
// and a one-use URL where an HTTP GET returns those bytes.
func (m *fileManager) InitiateFileTransferFromGuest(ctx *simulator.Context, req *types.InitiateFileTransferFromGuest) soap.HasFault {
	body := new(methods.InitiateFileTransferFromGuestBody)
	g := m.g
	if f := g.check(ctx, req.Vm, req.Auth); f != nil {
		body.Fault_ = fault(f)
		return body
	}
	read, f := g.script(`[ -e "$1" ] || exit 2; [ -f "$1" ] || exit 4; `+
		`stat -c '%a %u %g %Y' -- "$1" >&2 && exec cat -- "$1"`, nil, req.GuestFilePath)
	if f != nil {
		body.Fault_ = fault(f)
		return body
	}
	file := types.FileFault{File: req.GuestFilePath}
	var mode, uid, gid, mtime int64
	_, scanErr := fmt.Sscanf(string(read.Stderr), "%o %d %d %d", &mode, &uid, &gid, &mtime)
	switch {
	case read.ExitCode == 2:
		body.Fault_ = fault(&types.FileNotFound{FileFault: file})
		return body
	case read.ExitCode == 4:
		body.Fault_ = fault(&types.NotAFile{FileFault: file})
		return body
	case read.ExitCode != 0 || scanErr != nil:
		body.Fault_ = fault(&types.GuestPermissionDenied{})
		return body
	}
	owner, group := int32(uid), int32(gid)
	modified := time.Unix(mtime, 0).UTC()
	attributes := &types.GuestPosixFileAttributes{
		GuestFileAttributes: types.GuestFileAttributes{ModificationTime: &modified},
		OwnerId:             &owner,
		GroupId:             &group,
		Permissions:         mode,
	}
	t := &transfer{path: req.GuestFilePath, size: int64(len(read.Stdout)), data: read.Stdout}
	body.Res = &types.InitiateFileTransferFromGuestResponse{Returnval: types.FileTransferInformation{
		Attributes: attributes,
		Size:       t.size,
		Url:        g.newTransfer(t),
	}}
	return body
}

// serveTransfer moves the bytes of one transfer: PUT for an upload, GET for a download.
func (g *guestOps) serveTransfer(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Query()
	key := query.Get("id") + "/" + query.Get("token")
	g.mu.Lock()
	t, ok := g.transfers[key]
	if ok && time.Now().Before(t.expires) && (r.Method == http.MethodPut) == t.toGuest {
		delete(g.transfers, key) // one use
	} else {
		ok = false
	}
	g.mu.Unlock()
	if !ok {
		http.Error(w, "no such transfer", http.StatusNotFound)
		return
	}
	switch r.Method {
	case http.MethodGet:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(t.data)))
		_, _ = w.Write(t.data)
	case http.MethodPut:
		data, err := ioutil.ReadAll(io.LimitReader(r.Body, t.size+1))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if int64(len(data)) != t.size {
			http.Error(w, fmt.Sprintf("expected %d bytes, got %d", t.size, len(data)), http.StatusBadRequest)
			return
		}
		mode := ""
		if t.mode != 0 {
			mode = strconv.FormatInt(t.mode&0o7777, 8)
		}
		result, f := g.script(`cat > "$1" || exit 1; [ -z "$2" ] || chmod "$2" -- "$1"`, data, t.path, mode)
		if f != nil || result.ExitCode != 0 {
			http.Error(w, "writing the guest file failed", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// CreateTemporaryDirectoryInGuest makes a new folder (mktemp -d) in directoryPath, or in the
// guest's temp dir, named prefix + random + suffix, and returns its path.
func (m *fileManager) CreateTemporaryDirectoryInGuest(ctx *simulator.Context, req *types.CreateTemporaryDirectoryInGuest) soap.HasFault {
	body := new(methods.CreateTemporaryDirectoryInGuestBody)
	g := m.g
	if f := g.check(ctx, req.Vm, req.Auth); f != nil {
		body.Fault_ = fault(f)
		return body
	}
	made, f := g.script(`dir=${1:-${TMPDIR:-/tmp}}; [ -d "$dir" ] || exit 2; `+
		`exec mktemp -d -- "$dir/$2XXXXXXXXXX$3"`, nil, req.DirectoryPath, req.Prefix, req.Suffix)
	if f != nil {
		body.Fault_ = fault(f)
		return body
	}
	if made.ExitCode != 0 {
		body.Fault_ = fault(&types.FileNotFound{FileFault: types.FileFault{File: req.DirectoryPath}})
		return body
	}
	path := strings.TrimRight(string(made.Stdout), "\n")
	body.Res = &types.CreateTemporaryDirectoryInGuestResponse{Returnval: path}
	return body
}

// DeleteDirectoryInGuest removes a folder: an empty one, or with recursive its whole tree.
func (m *fileManager) DeleteDirectoryInGuest(ctx *simulator.Context, req *types.DeleteDirectoryInGuest) soap.HasFault {
	body := new(methods.DeleteDirectoryInGuestBody)
	g := m.g
	if f := g.check(ctx, req.Vm, req.Auth); f != nil {
		body.Fault_ = fault(f)
		return body
	}
	recursive := "0"
	if req.Recursive {
		recursive = "1"
	}
	removed, f := g.script(`[ -e "$1" ] || exit 2; [ -d "$1" ] || exit 4; `+
		`if [ "$2" = 1 ]; then rm -rf -- "$1"; else rmdir -- "$1" || exit 5; fi`,
		nil, req.DirectoryPath, recursive)
	if f != nil {
		body.Fault_ = fault(f)
		return body
	}
	file := types.FileFault{File: req.DirectoryPath}
	switch removed.ExitCode {
	case 0:
		body.Res = &types.DeleteDirectoryInGuestResponse{}
	case 4:
		body.Fault_ = fault(&types.NotADirectory{FileFault: file})
	case 5:
		body.Fault_ = fault(&types.DirectoryNotEmpty{FileFault: file})
	default:
		body.Fault_ = fault(&types.FileNotFound{FileFault: file})
	}
	return body
}

// --- task faults ---------------------------------------------------------------------------

// taskFaults makes the next call of a task method (ReconfigVM_Task...) on a guest VM return a
// task that ends in error, as a real vCenter's task does when the host cannot do it (a full
// datastore: "Unable to write VMX file"). Nothing of the call is applied.
type taskFaults struct {
	mu   sync.Mutex
	vms  map[types.ManagedObjectReference]bool
	next map[string]string // task method -> the message of its fault
}

// command runs one stdin command and returns its answer.
func (f *taskFaults) command(line string) map[string]interface{} {
	words := strings.SplitN(strings.TrimSpace(line), " ", 3)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case len(words) == 3 && words[0] == "fail-task" && strings.HasSuffix(words[1], "_Task"):
		f.next[words[1]] = words[2]
	case len(words) == 1 && words[0] == "clear":
		f.next = map[string]string{}
	default:
		return map[string]interface{}{"ok": false, "error": "unknown command: " + line}
	}
	return map[string]interface{}{"ok": true}
}

// take returns the armed fault of this call and disarms it.
func (f *taskFaults) take(method *simulator.Method) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	message, ok := f.next[method.Name]
	if !ok || !f.vms[method.This] {
		return "", false
	}
	delete(f.next, method.Name)
	return message, true
}

func (f *taskFaults) armed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.next) > 0
}

// wrap answers an armed call in place of the simulator; every other request passes through.
func (f *taskFaults) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && f.armed() {
			body, err := ioutil.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = ioutil.NopCloser(bytes.NewReader(body))
			if method, err := simulator.UnmarshalBody(types.TypeFunc(), body); err == nil {
				if message, ok := f.take(method); ok {
					failedTask(w, method, message)
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// failedTask answers the call with a new task of its VM that has ended in a
// GenericVmConfigFault (the fault vSphere reports when a VM's configuration cannot be written).
func failedTask(w http.ResponseWriter, method *simulator.Method, message string) {
	vm := simulator.Map.Get(method.This).(mo.Reference)
	id := strings.TrimSuffix(method.Name, "_Task")
	task := simulator.CreateTask(vm, strings.ToLower(id[:1])+id[1:], nil)
	now := time.Now()
	simulator.Map.Update(task, []types.PropertyChange{
		{Name: "info.startTime", Val: now},
		{Name: "info.completeTime", Val: now},
		{Name: "info.state", Val: types.TaskInfoStateError},
		{Name: "info.error", Val: types.LocalizedMethodFault{
			Fault:            &types.GenericVmConfigFault{Reason: message},
			LocalizedMessage: message,
		}},
	})
	log.Printf("%s on %s: task %s ends in error: %s", method.Name, method.This.Value, task.Self.Value, message)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	fmt.Fprintf(w, `%s<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" `+
		`xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" `+
		`xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>`+
		`<%sResponse xmlns="urn:vim25"><returnval type="Task">%s</returnval></%sResponse>`+
		`</soapenv:Body></soapenv:Envelope>`, xml.Header, method.Name, task.Self.Value, method.Name)
}
