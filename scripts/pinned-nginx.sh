# Sourced by the trafficgen benchmarks: `pinned_nginx DIR PORT` serves a 612-byte page (nginx's
# default, the seed's target) from one nginx worker pinned to core 0, stopped when the script
# exits, and waits until it answers. Sets `url`.
pinned_nginx() {
  local root=$1 port=$2
  mkdir -p "$root/html" "$root/logs"
  head -c 612 /dev/zero | tr '\0' 'x' > "$root/html/index.html"
  cat > "$root/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $root/nginx.pid;
error_log $root/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$port;
    location / { root $root/html; }
  }
}
CONF
  taskset -c 0 nginx -p "$root" -c "$root/nginx.conf" &
  nginx_pid=$!
  trap 'kill $nginx_pid 2>/dev/null || true' EXIT
  url="http://127.0.0.1:$port/"
  for _ in $(seq 50); do curl -sf -o /dev/null "$url" && return; sleep 0.1; done
  echo "nginx did not answer on $url" >&2
  return 1
}
