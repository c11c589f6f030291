# A scratch image holding only the static sandbox-init, for other images to copy from:
#
#   COPY --from=jailoc/sandbox-init /sandbox-init /usr/local/bin/sandbox-init
#
# The build context is a directory that contains the release binary and nothing else heavy:
#
#   cargo build --release -p sandbox-init
#   ctx=$(mktemp -d) && cp target/x86_64-unknown-linux-gnu/release/sandbox-init "$ctx/"
#   docker build -f dockerfiles/sandbox-init.Dockerfile -t jailoc/sandbox-init "$ctx"
#
# FROM scratch needs no registry, so this builds offline (the e2e tests do exactly that).
FROM scratch
COPY sandbox-init /sandbox-init
# Lets `docker run jailoc/sandbox-init --print-plan ...` work for a quick look.
ENTRYPOINT ["/sandbox-init"]
