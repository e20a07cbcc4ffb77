# A local stand-in for openpolicyagent/opa:<version>-static, built from the static `opa`
# that scripts/install-opa.sh makes (no registry needed). Same layout as upstream:
# the binary at /opa, a non-root user (1000:1000), `run` as the default command.
FROM scratch
COPY opa /opa
ENV PATH=/
USER 1000:1000
ENTRYPOINT ["/opa"]
CMD ["run"]
