package diagnose

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// apiServerOf serves, as the API server would, a Deployment "web" in
// namespace shop and its pods (paged when the client asks for pages); it
// counts the event lists and the pod list pages asked for.
func apiServerOf(t *testing.T, image string, pods []corev1.Pod, events ...corev1.Event) (*kubernetes.Clientset, *atomic.Int32, *atomic.Int32) {
	t.Helper()
	var eventLists, podPages atomic.Int32
	dep := appsv1.Deployment{TypeMeta: metav1.TypeMeta{Kind: "Deployment", APIVersion: "apps/v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}}}}
	write := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/nodes", func(w http.ResponseWriter, r *http.Request) {
		write(w, corev1.NodeList{TypeMeta: metav1.TypeMeta{Kind: "NodeList", APIVersion: "v1"}})
	})
	mux.HandleFunc("GET /apis/apps/v1/namespaces/shop/deployments/web", func(w http.ResponseWriter, r *http.Request) { write(w, dep) })
	mux.HandleFunc("GET /api/v1/namespaces/shop/serviceaccounts/default", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		write(w, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: "Failure", Reason: metav1.StatusReasonNotFound, Code: 404})
	})
	mux.HandleFunc("GET /api/v1/namespaces/shop/pods", func(w http.ResponseWriter, r *http.Request) {
		podPages.Add(1)
		list := corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}}
		list.Items, list.Continue = page(r, pods)
		write(w, list)
	})
	mux.HandleFunc("GET /api/v1/namespaces/shop/secrets/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		write(w, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: "Failure", Reason: metav1.StatusReasonForbidden, Code: 403,
			Message: `secrets is forbidden: User "sre" cannot get resource "secrets" in API group "" in the namespace "shop"`})
	})
	mux.HandleFunc("GET /api/v1/namespaces/shop/events", func(w http.ResponseWriter, r *http.Request) {
		eventLists.Add(1)
		list := corev1.EventList{TypeMeta: metav1.TypeMeta{Kind: "EventList", APIVersion: "v1"}}
		list.Items, list.Continue = page(r, events)
		write(w, list)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL, QPS: -1})
	if err != nil {
		t.Fatal(err)
	}
	return cs, &eventLists, &podPages
}

// page is the page of items a list request asks for (limit, continue) and
// the continue token of the next, as the API server pages.
func page[T any](r *http.Request, items []T) ([]T, string) {
	from, _ := strconv.Atoi(r.URL.Query().Get("continue"))
	to := len(items)
	if l, _ := strconv.Atoi(r.URL.Query().Get("limit")); l > 0 && from+l < to {
		to = from + l
	}
	next := ""
	if to < len(items) {
		next = strconv.Itoa(to)
	}
	return items[from:to], next
}

// TestWhyWorkloadManyPodsIsBounded: a Deployment of 2,000 running pods and
// 30 stuck ones: healthy pods cost no event reads, the API is read in
// pages, ten stuck pods are explained and the rest counted.
func TestWhyWorkloadManyPodsIsBounded(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1", "linux", "amd64")
	image := tr.Host + "/team/api:v1"
	var pods []corev1.Pod
	for i := range 2030 {
		reason := ""
		if i >= 2000 {
			reason = "ImagePullBackOff"
		}
		p := podOf(image, reason, "", "")
		p.Name, p.UID, p.Labels = "web-"+strconv.Itoa(i), types.UID("u"+strconv.Itoa(i)), map[string]string{"app": "web"}
		pods = append(pods, *p)
	}
	cs, eventLists, podPages := apiServerOf(t, image, pods)
	e := &Explainer{cs: cs, checker: testChecker(t), ns: "shop"}
	out, err := e.Explain(context.Background(), "deployment/web")
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Pods) != maxPods || out.MorePods != 20 {
		t.Errorf("%d pods explained, %d more; want %d and 20", len(out.Pods), out.MorePods, maxPods)
	}
	if n := eventLists.Load(); n > maxPods {
		t.Errorf("%d event lists for %d stuck pods explained", n, maxPods)
	}
	if n := podPages.Load(); n < 2 {
		t.Errorf("pods read in %d page(s): 2,030 pods in one response", n)
	}
}

// TestWhySecretsForbidden: the "view" ClusterRole cannot get secrets. why
// still explains the pod, says so in a note, and names no credential
// cause it could not check (the lookup ran without the pod's secrets).
func TestWhySecretsForbidden(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1", "linux", "amd64")
	tr.SetAuth("basic")
	image := tr.Host + "/team/api:v1"
	p := podOf(image, "ImagePullBackOff", "", "")
	p.Name, p.Labels = "web-0", map[string]string{"app": "web"}
	p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
	cs, _, _ := apiServerOf(t, image, []corev1.Pod{*p})
	e := &Explainer{cs: cs, checker: testChecker(t), ns: "shop"}
	out, err := e.Explain(context.Background(), "deployment/web")
	if err != nil {
		t.Fatalf("why failed as a whole: %v", err)
	}
	if len(out.Pods) != 1 || len(out.Pods[0].Images) != 1 {
		t.Fatalf("pods %+v", out.Pods)
	}
	if ex := out.Pods[0].Images[0]; ex.Status != StatusCannotTell {
		t.Errorf("status %s (%s), want %s", ex.Status, ex.Cause, StatusCannotTell)
	}
	if !slices.ContainsFunc(out.Notes, func(n string) bool { return strings.Contains(n, "secrets not read (forbidden)") }) {
		t.Errorf("notes %q", out.Notes)
	}
}

// TestWhyReadsEventsPastOnePage: the API server orders events by name, not
// time; the kubelet's newest failure may sit past the first page.
func TestWhyReadsEventsPastOnePage(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1", "linux", "amd64")
	image := tr.Host + "/team/api:v2" // missing: the cause is not-found
	p := podOf(image, "ImagePullBackOff", "", "")
	p.Name, p.Labels = "web-0", map[string]string{"app": "web"}
	t0 := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	var evs []corev1.Event
	for i := range maxEvents + 100 {
		evs = append(evs, event("Pulling", `Pulling image "`+image+`"`, t0.Add(time.Duration(i)*time.Second)))
	}
	evs = append(evs, event("Failed", `Failed to pull image "`+image+`": newest`, t0.Add(time.Hour)))
	cs, _, _ := apiServerOf(t, image, []corev1.Pod{*p}, evs...)
	e := &Explainer{cs: cs, checker: testChecker(t), ns: "shop"}
	out, err := e.Explain(context.Background(), "deployment/web")
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Pods) != 1 || len(out.Pods[0].Images) != 1 || !strings.HasSuffix(out.Pods[0].Images[0].LastError, "newest") {
		t.Errorf("pods %+v: want the newest failure, on the second page", out.Pods)
	}
}
