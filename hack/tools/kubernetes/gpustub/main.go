// Command gpustub is a real kubelet device plugin that advertises fake `nvidia.com/gpu` devices.
//
// The local real node has no GPU, but the operator's GPU policy must meet the kubelet's device
// manager (allocation, capacity, admission) rather than a patched node status. gpustub serves
// the v1beta1 DevicePlugin API on a unix socket next to the kubelet's registration socket,
// registers itself, and hands out device IDs as NVIDIA_VISIBLE_DEVICES like the NVIDIA plugin.
// The kubelet deletes every socket in its plugin directory when it (re)starts, so gpustub
// watches its own socket and re-registers whenever it disappears or kubelet.sock is replaced.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

type plugin struct {
	pluginapi.UnimplementedDevicePluginServer
	devices []*pluginapi.Device
}

func newPlugin(count int) *plugin {
	p := &plugin{}
	for i := 0; i < count; i++ {
		p.devices = append(p.devices, &pluginapi.Device{ID: fmt.Sprintf("GPU-fake-%d", i), Health: pluginapi.Healthy})
	}
	return p
}

func (p *plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

// ListAndWatch sends the (never changing) device list once and then holds the stream open.
func (p *plugin) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: p.devices}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

func (p *plugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	resp := &pluginapi.AllocateResponse{}
	for _, c := range req.ContainerRequests {
		log.Printf("allocate %v", c.DevicesIds)
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerAllocateResponse{
			Envs: map[string]string{"NVIDIA_VISIBLE_DEVICES": strings.Join(c.DevicesIds, ",")},
		})
	}
	return resp, nil
}

func (p *plugin) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}

// serve listens on socket and returns the running server.
func serve(p *plugin, socket string) (*grpc.Server, error) {
	_ = os.Remove(socket)
	lis, err := net.Listen("unix", socket)
	if err != nil {
		return nil, err
	}
	srv := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(srv, p)
	go func() { _ = srv.Serve(lis) }()
	return srv, nil
}

func register(dir, endpoint, resource string) error {
	conn, err := grpc.NewClient("unix://"+filepath.Join(dir, "kubelet.sock"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version: pluginapi.Version, Endpoint: endpoint, ResourceName: resource,
	})
	return err
}

// inode identifies a file so a re-created kubelet.sock (a kubelet restart) is noticed.
func inode(path string) uint64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return sys.Ino
	}
	return 0
}

func main() {
	dir := flag.String("plugin-dir", pluginapi.DevicePluginPath, "kubelet device-plugin directory")
	count := flag.Int("count", 4, "number of fake GPUs to advertise")
	resource := flag.String("resource", "nvidia.com/gpu", "extended resource name")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	endpoint := "tryon-gpustub.sock"
	socket := filepath.Join(*dir, endpoint)
	kubeletSock := filepath.Join(*dir, "kubelet.sock")
	p := newPlugin(*count)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)

	var srv *grpc.Server
	var registeredWith uint64
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		kubeletIno := inode(kubeletSock)
		_, ownErr := os.Stat(socket)
		if kubeletIno != 0 && (kubeletIno != registeredWith || ownErr != nil) {
			if srv != nil {
				srv.Stop()
			}
			var err error
			if srv, err = serve(p, socket); err != nil {
				log.Printf("listen %s: %v", socket, err)
			} else if err := register(*dir, endpoint, *resource); err != nil {
				log.Printf("register with kubelet: %v (retrying)", err)
			} else {
				registeredWith = kubeletIno
				log.Printf("registered %d x %s", *count, *resource)
			}
		}
		select {
		case <-stop:
			if srv != nil {
				srv.Stop()
			}
			_ = os.Remove(socket)
			return
		case <-tick.C:
		}
	}
}
