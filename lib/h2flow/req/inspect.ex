defimpl Inspect, for: H2Flow.Req do
  # Logs and crash reports never carry a request body: only what identifies the request.
  import Inspect.Algebra

  def inspect(req, opts) do
    fields = [
      stream_id: req.stream_id,
      method: req.method,
      path: req.path,
      authority: req.authority,
      peer: req.peer
    ]

    concat(["#H2Flow.Req<", to_doc(fields, opts), ">"])
  end
end
