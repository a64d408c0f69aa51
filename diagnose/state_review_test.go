package diagnose

import (
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestStuckImagesUntaggedMatchesKubeletEvents: the kubelet names an image
// without tag or digest with ":latest" appended in its events
// (applyDefaultImageTag before "Pulling image %q" / "Failed to pull image
// %q"), so "nginx" is reported as "nginx:latest".
func TestStuckImagesUntaggedMatchesKubeletEvents(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ name, image, vol string }{
		{"container", "reg.example/team/api", ""},
		{"image volume", "reg.example/team/api:v1", "reg.example/models/m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reason, named := "ImagePullBackOff", tc.image
			if tc.vol != "" {
				reason, named = "ContainerCreating", tc.vol
			}
			pod := podOf(tc.image, reason, "", tc.vol)
			evs := []corev1.Event{event("Failed", `Failed to pull image "`+named+`:latest": not found`, t0)}
			stuck, _ := stuckImages(pod, workloadOf(t, pod), evs)
			if len(stuck) != 1 || stuck[0].LastError == nil {
				t.Fatalf("stuck %+v: want one image with the kubelet's last error", stuck)
			}
		})
	}
}

// TestStuckImagesWaitingIsBounded: a pod of 2,000 containers waiting on
// something else is said in a bounded number of lines.
func TestStuckImagesWaitingIsBounded(t *testing.T) {
	pod := podOf("reg.example/x:v1", "CrashLoopBackOff", "", "")
	st := pod.Status.ContainerStatuses[0]
	for i := range 2000 {
		st.Name = "c" + strconv.Itoa(i)
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, st)
	}
	_, waiting := stuckImages(pod, workloadOf(t, pod), nil)
	if len(waiting) > maxWaiting+1 || !strings.Contains(waiting[len(waiting)-1], "1981 more") {
		t.Errorf("%d waiting lines, the last %q", len(waiting), waiting[len(waiting)-1])
	}
}
