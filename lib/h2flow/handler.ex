defmodule H2Flow.Handler do
  @moduledoc """
  The behaviour of request handlers, like Cowboy's plain HTTP handlers.

  Each request runs `c:init/2` in a process of its own, with the `H2Flow.Req` of the request
  and the `:handler_opts` given to `H2Flow.start_link/1`. The handler reads the body and sends
  the response through `H2Flow.Req`, then returns.

      defmodule MyApp.Hello do
        @behaviour H2Flow.Handler

        @impl true
        def init(req, state) do
          {:ok, body, req} = H2Flow.Req.read_body(req)
          req = H2Flow.Req.reply(200, %{"content-type" => "text/plain"}, "got \#{byte_size(body)}", req)
          {:ok, req, state}
        end
      end

  When `c:init/2` returns without having replied, the response is `204 No Content`; a
  streamed response that was not finished is ended. When the handler raises, exits or throws,
  the error is logged, the stream gets a `500` if nothing was sent yet and a RST_STREAM
  INTERNAL_ERROR otherwise, and the connection and its other streams carry on.

  When the peer resets the stream or the connection goes away, the handler process is stopped;
  `c:terminate/3` is not called then.
  """

  @doc "Handles one request. Returns the request as last updated, and a state for `c:terminate/3`."
  @callback init(req :: H2Flow.Req.t(), opts :: term()) :: {:ok, H2Flow.Req.t(), state :: term()}

  @doc """
  Called after `c:init/2` returns (`reason` is `:normal`) or raises (`reason` is
  `{:crash, kind, reason}`), in the handler's process.
  """
  @callback terminate(reason :: term(), req :: H2Flow.Req.t(), state :: term()) :: any()

  @optional_callbacks terminate: 3
end
