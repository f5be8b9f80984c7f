defmodule H2Flow.Client.Request do
  @moduledoc false
  # One request as its connection process sees it, and what its caller is told. Every caller
  # command gets exactly one reply, sent to the request's alias: `:ok` (send the next piece of
  # the body), `{:done, outcome}` (the request's outcome: the whole response, or the response
  # head in streaming mode), `{:more, data}` / `{:fin, data, trailers}` (a piece of a streamed
  # response body) or `{:error, reason}`. Bodies go as iodata: the caller joins them.

  defstruct [
    :ref,
    :caller,
    :mon,
    # :whole (the reply is the whole response) or :stream (the reply is its head).
    :mode,
    :max_body,
    # The request head, until its stream opens.
    :headers,
    id: nil,
    # Body bytes the engine has not taken yet: {binary, fin?}.
    sending: nil,
    # The caller's command waiting for an answer: :ack, :final or :read.
    waiter: nil,
    status: nil,
    resp_headers: [],
    body: [],
    size: 0,
    trailers: [],
    # The response has ended.
    fin: false,
    error: nil
  ]

  @doc "Sends a reply to a request's caller (its alias)."
  def reply(ref, message), do: send(ref, {ref, message})

  @doc """
  Answers the caller's waiting command if what it waits for is there: `{:keep, req}`, or
  `{:over, req}` once the request is over.
  """
  def answer(%__MODULE__{waiter: :read, error: error} = req) when error != nil do
    reply(req.ref, {:error, error})
    {:over, req}
  end

  def answer(%__MODULE__{waiter: waiter, error: error} = req)
      when error != nil and waiter != nil do
    reply(req.ref, {:done, {:error, error}})
    {:over, req}
  end

  def answer(%__MODULE__{waiter: :ack, sending: nil, id: id} = req) when id != nil do
    reply(req.ref, :ok)
    {:keep, %{req | waiter: nil}}
  end

  # The response arrived while the caller was still sending, and the server closed the stream:
  # the rest of the body is not wanted (RFC 9113 8.1).
  def answer(%__MODULE__{waiter: :ack, id: nil, fin: true} = req),
    do: answer(%{req | waiter: :final})

  def answer(%__MODULE__{waiter: :final, sending: nil, mode: :whole, fin: true} = req) do
    response = %{
      status: req.status,
      headers: req.resp_headers,
      body: req.body,
      trailers: req.trailers
    }

    reply(req.ref, {:done, {:ok, response}})
    {:over, req}
  end

  def answer(%__MODULE__{waiter: :final, sending: nil, mode: :stream, status: status} = req)
      when status != nil do
    reply(req.ref, {:done, {:ok, {status, req.resp_headers}}})
    {:keep, %{req | waiter: nil}}
  end

  def answer(req), do: {:keep, req}

  @doc "Answers a waiting read with what the request holds: the end, or a piece of the body."
  def read_reply(req, status) do
    if status == :fin or req.fin do
      reply(req.ref, {:fin, req.body, req.trailers})
      {:over, req}
    else
      reply(req.ref, {:more, req.body})
      {:keep, %{req | body: [], waiter: nil}}
    end
  end
end
