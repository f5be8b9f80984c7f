defmodule H2Flow.Client.Response do
  @moduledoc """
  The head of a response that `H2Flow.Client.stream/6` returned; its body is read with
  `H2Flow.Client.read_body/2`, by the process that called `stream/6`.

      {:ok, response} = H2Flow.Client.stream(client, "GET", "/large", [])
      %H2Flow.Client.Response{status: 200, headers: headers} = response
      {:more, first_piece, response} = H2Flow.Client.read_body(response)
      :ok = H2Flow.Client.cancel(response)

  `trailers` are set once `read_body/2` returned `{:ok, data, response}`. `pending` holds the
  pieces of the body that were taken from the connection and that `read_body/2` has not
  returned yet.
  """

  @enforce_keys [:status, :headers, :client, :ref]
  defstruct [:status, :headers, :client, :ref, trailers: [], done: false, pending: []]

  @type t :: %__MODULE__{
          status: 100..599,
          headers: [{binary(), binary()}],
          trailers: [{binary(), binary()}],
          client: H2Flow.Client.t(),
          ref: reference(),
          done: boolean(),
          pending: [binary()]
        }
end
